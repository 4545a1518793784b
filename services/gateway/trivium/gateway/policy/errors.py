"""What is wrong with a policy file: every problem, each named by the dotted path of its field."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from trivium.common.errors import TriviumError

__all__ = ("ROOT", "InvalidPolicyError", "PolicyIssue")

ROOT = "(file)"
"""The path of a problem with the file as a whole."""


class PolicyIssue(msgspec.Struct, frozen=True):
    path: str
    """Dotted, with list indexes: `features.support-kb.retrieval.k`, `features.x.fallback[1]`."""
    message: str


class InvalidPolicyError(TriviumError):
    """The policy file cannot be used; `issues` lists every problem found."""

    status_code = 422
    code = "invalid_policy"
    title = "Invalid policy"

    def __init__(self, source: str, issues: Sequence[PolicyIssue]) -> None:
        listing = "; ".join(f"{issue.path}: {issue.message}" for issue in issues)
        super().__init__(
            f"policy {source} is invalid ({len(issues)} error(s)): {listing}",
            field=issues[0].path,
            extra={"errors": [{"path": i.path, "message": i.message} for i in issues]},
        )
        self.issues = tuple(issues)
