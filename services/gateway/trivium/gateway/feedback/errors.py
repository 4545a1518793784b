"""The feedback routes' errors (problem details naming `answer_id`)."""

from __future__ import annotations

from trivium.common.errors import NotFoundError, TriviumError, UnavailableError

__all__ = ("AnswerExpiredError", "FeedbackUnavailableError", "UnknownAnswerError")


class UnknownAnswerError(NotFoundError):
    code = "answer_not_found"
    title = "Answer not found"


class AnswerExpiredError(TriviumError):
    status_code = 410
    code = "answer_expired"
    title = "Answer past the feedback retention"


class FeedbackUnavailableError(UnavailableError):
    code = "feedback_unavailable"
    title = "Feedback unavailable"
