"""The review queue's wire contract: the case a reviewer sees, decisions, and the views."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from trivium.gateway.invoke.schemas import Citation, Lineage, Message

__all__ = (
    "REVIEW_ID_PATTERN",
    "DecisionKind",
    "DecisionRequest",
    "Passage",
    "Reason",
    "ReviewCase",
    "ReviewDecision",
    "ReviewList",
    "ReviewStatus",
    "ReviewSummary",
    "ReviewView",
)

REVIEW_ID_PATTERN = r"^rev_[0-9a-f]{28}$"
Reason = Literal["flagged", "withheld", "held", "sampled"]
"""Why the answer entered the queue: its verdict, or the feature's `review.sample_rate`."""
ReviewStatus = Literal["pending", "approved", "corrected", "rejected"]
DecisionKind = Literal["approve", "correct", "reject"]
STATUS_OF: dict[DecisionKind, ReviewStatus] = {
    "approve": "approved",
    "correct": "corrected",
    "reject": "rejected",
}
REFUSAL = "A reviewer did not approve this answer, and gave no correction."


class Passage(msgspec.Struct, frozen=True):
    """A passage the answer was given, with its text (the reviewer judges against it)."""

    index: int
    doc_id: str
    chunk_id: str
    text: str
    score: float
    source: str | None = None
    title: str | None = None


class ReviewCase(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a reviewer needs, as it was when the answer was made (immutable)."""

    id: str
    feature: str
    reason: Reason
    created_ms: int
    answer_id: str
    request_id: str
    caller: str
    """The caller key's name (`anonymous` in open mode)."""
    input: dict[str, Any] | None = None
    messages: list[Message] | None = None
    output: str | None
    """What the model said (kept even when the caller was not given it)."""
    passages: list[Passage]
    citations: list[Citation]
    lineage: Lineage
    route: str
    variant: str | None = None
    groundedness: float | None = None
    verdict: str | None = None


class DecisionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`correct` needs `correction`; `approve` takes none; `reject` may give one."""

    decision: DecisionKind
    correction: Annotated[str, msgspec.Meta(min_length=1, max_length=32_768)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


class ReviewDecision(msgspec.Struct, frozen=True):
    decision: DecisionKind
    reviewer: str
    """The reviewer key's name: the audit actor."""
    decided_ms: int
    correction: str | None = None
    note: str | None = None


class ReviewView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A review. A reviewer (scope `review`) sees the `case` and the `decision`; the caller
    who got the 202 sees only the outcome: `output` once approved or corrected, else
    `refusal` once rejected without a correction."""

    id: str
    feature: str
    status: ReviewStatus
    reason: Reason
    created_ms: int
    decided_ms: int | None = None
    output: str | None = None
    """The answer to give: the model's (approved) or the reviewer's correction."""
    refusal: str | None = None
    citations: list[Citation] = []
    case: ReviewCase | None = None
    decision: ReviewDecision | None = None


class ReviewSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    feature: str
    status: ReviewStatus
    reason: Reason
    created_ms: int
    groundedness: float | None = None


class ReviewList(msgspec.Struct, frozen=True):
    reviews: list[ReviewSummary]
    """Newest first."""
