"""Checking a policy without applying it: the gateway's own parse, then the warning rules.

`trivium policy check` and `POST /v1/policy:validate` both answer with a `PolicyReport`
built here, so they agree on every file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from trivium.gateway.policy.errors import InvalidPolicyError, PolicyIssue
from trivium.gateway.policy.lint import lint
from trivium.gateway.policy.loader import load_policy_file, parse_policy
from trivium.gateway.policy.model import Policy, policy_hash

__all__ = ("CheckedPolicy", "PolicyReport", "check_policy", "check_policy_file", "invalid_report")


class PolicyReport(msgspec.Struct, frozen=True):
    valid: bool
    hash: str | None
    """The hash the gateway would report once this policy is active (None: invalid)."""
    version: int | None
    errors: list[PolicyIssue]
    warnings: list[PolicyIssue]


class CheckedPolicy(msgspec.Struct, frozen=True):
    """A valid policy and its warnings."""

    policy: Policy
    warnings: list[PolicyIssue]

    def report(self, errors: Sequence[PolicyIssue] = ()) -> PolicyReport:
        """The report, failed by `errors` found afterwards (e.g. missing references)."""
        return PolicyReport(
            valid=not errors,
            hash=policy_hash(self.policy),
            version=self.policy.version,
            errors=list(errors),
            warnings=self.warnings,
        )


def check_policy(text: str | bytes, source: str) -> CheckedPolicy:
    """The policy as the gateway would load it, with its warnings; `InvalidPolicyError` lists
    every error otherwise."""
    policy = parse_policy(text, source)
    return CheckedPolicy(policy, lint(policy))


def check_policy_file(path: Path) -> CheckedPolicy:
    """`check_policy` of the file at `path` (one it cannot read is invalid, as at a reload)."""
    policy = load_policy_file(path)
    return CheckedPolicy(policy, lint(policy))


def invalid_report(error: InvalidPolicyError) -> PolicyReport:
    """The report of a policy that does not load: every error, no warnings."""
    return PolicyReport(
        valid=False, hash=None, version=None, errors=list(error.issues), warnings=[]
    )
