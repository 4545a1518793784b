"""The routing policy: which road each feature takes, hot-reloaded from a YAML file."""

from trivium.gateway.policy.assignment import assign_variant, assignment_key, staying_shares
from trivium.gateway.policy.check import (
    CheckedPolicy,
    PolicyReport,
    check_policy,
    check_policy_file,
    invalid_report,
)
from trivium.gateway.policy.diff import PolicyDiff, diff_policies, moved_share
from trivium.gateway.policy.errors import InvalidPolicyError, PolicyIssue
from trivium.gateway.policy.holder import LoadedPolicy, PolicyHolder, ReloadOutcome
from trivium.gateway.policy.lint import lint
from trivium.gateway.policy.loader import load_policy_file, parse_policy
from trivium.gateway.policy.model import ROADS, Arm, Feature, Policy, Road, policy_hash
from trivium.gateway.policy.references import check_references
from trivium.gateway.policy.routes import PolicyController
from trivium.gateway.policy.schema import policy_schema, policy_schema_text

__all__ = (
    "ROADS",
    "Arm",
    "CheckedPolicy",
    "Feature",
    "InvalidPolicyError",
    "LoadedPolicy",
    "Policy",
    "PolicyController",
    "PolicyDiff",
    "PolicyHolder",
    "PolicyIssue",
    "PolicyReport",
    "ReloadOutcome",
    "Road",
    "assign_variant",
    "assignment_key",
    "check_policy",
    "check_policy_file",
    "check_references",
    "diff_policies",
    "invalid_report",
    "lint",
    "load_policy_file",
    "moved_share",
    "parse_policy",
    "policy_hash",
    "policy_schema",
    "policy_schema_text",
    "staying_shares",
)
