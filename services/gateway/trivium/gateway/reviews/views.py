"""A stored review as a reader sees it."""

from __future__ import annotations

from trivium.gateway.reviews.schemas import REFUSAL, ReviewView
from trivium.gateway.reviews.store import StoredReview

__all__ = ("view_of",)


def view_of(stored: StoredReview, *, reviewer: bool) -> ReviewView:
    case, decision = stored.case, stored.decision
    output: str | None = None
    refusal: str | None = None
    if decision is not None:
        output = case.output if decision.decision == "approve" else decision.correction
        if output is None:
            refusal = REFUSAL
    return ReviewView(
        id=case.id,
        feature=case.feature,
        status=stored.status,
        reason=case.reason,
        created_ms=case.created_ms,
        decided_ms=decision.decided_ms if decision is not None else None,
        output=output,
        refusal=refusal,
        citations=case.citations if decision is not None and output is not None else [],
        case=case if reviewer else None,
        decision=decision if reviewer else None,
    )
