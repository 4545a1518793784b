"""The routing policy: which road each feature takes, hot-reloaded from a YAML file."""

from trivium.gateway.policy.assignment import assign_variant, assignment_key
from trivium.gateway.policy.errors import InvalidPolicyError, PolicyIssue
from trivium.gateway.policy.holder import LoadedPolicy, PolicyHolder, ReloadOutcome
from trivium.gateway.policy.loader import load_policy_file, parse_policy
from trivium.gateway.policy.model import ROADS, Arm, Feature, Policy, Road, policy_hash
from trivium.gateway.policy.routes import PolicyController

__all__ = (
    "ROADS",
    "Arm",
    "Feature",
    "InvalidPolicyError",
    "LoadedPolicy",
    "Policy",
    "PolicyController",
    "PolicyHolder",
    "PolicyIssue",
    "ReloadOutcome",
    "Road",
    "assign_variant",
    "assignment_key",
    "load_policy_file",
    "parse_policy",
    "policy_hash",
)
