"""The review routes' errors (problem details naming the field)."""

from __future__ import annotations

from trivium.common.errors import ConflictError, NotFoundError

__all__ = ("ReviewDecidedError", "UnknownReviewError")


class UnknownReviewError(NotFoundError):
    code = "review_not_found"
    title = "Review not found"


class ReviewDecidedError(ConflictError):
    code = "review_decided"
    title = "Review already decided"
