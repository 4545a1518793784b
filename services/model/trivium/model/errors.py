"""Model-service errors; the OpenAI routes render them in the OpenAI error shape."""

from __future__ import annotations

from typing import ClassVar

from trivium.common.errors import InvalidInputError, NotFoundError, TriviumError, UnavailableError

__all__ = (
    "ContextLengthError",
    "DeadlineExceededError",
    "EngineNotReadyError",
    "ModelNotFoundError",
    "QueueFullError",
)


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ContextLengthError(InvalidInputError):
    code = "context_length_exceeded"


class QueueFullError(UnavailableError):
    code = "queue_full"


class EngineNotReadyError(UnavailableError):
    code = "engine_not_ready"


class DeadlineExceededError(TriviumError):
    status_code: ClassVar[int] = 504
    code = "deadline_exceeded"
    title = "Deadline exceeded"
