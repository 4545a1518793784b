"""One error hierarchy for every service: the HTTP status lives on the class.

Services raise these; `trivium.common.http.error_mapping` turns them (and any other
exception) into what a caller is told, sent as RFC 9457 problem details by the gateway and
retriever and in OpenAI's error shape by the model service and the gateway's OpenAI routes.
The CLI prints `message` and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = (
    "BadGatewayError",
    "ConflictError",
    "ForbiddenError",
    "GatewayTimeoutError",
    "HeaderTooLargeError",
    "InvalidInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "TooManyRequestsError",
    "TriviumError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
)


class TriviumError(Exception):
    """Base of every error a Trivium service reports to a caller."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"
    retry_after_s: int | None = None
    """Set: the caller may retry after this many seconds (sent as Retry-After)."""
    headers: Mapping[str, str] = MappingProxyType({})
    """Response headers the error carries beyond Retry-After (`WWW-Authenticate`, ...)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class InvalidInputError(TriviumError):
    status_code = 400
    code = "invalid_input"
    title = "Invalid input"


class NotFoundError(TriviumError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class ConflictError(TriviumError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class UnauthenticatedError(TriviumError):
    """No credential, or one that is not (or no longer) valid."""

    status_code = 401
    code = "unauthorized"
    title = "Unauthenticated"
    headers = MappingProxyType({"WWW-Authenticate": "Bearer"})


class ForbiddenError(TriviumError):
    """A valid credential that does not allow this route or this feature."""

    status_code = 403
    code = "forbidden"
    title = "Forbidden"


class HeaderTooLargeError(TriviumError):
    status_code = 431
    code = "header_too_large"
    title = "Request header fields too large"


class TooManyRequestsError(TriviumError):
    """A limit or budget is spent; the caller may retry after `retry_after_s` seconds."""

    status_code = 429
    code = "too_many_requests"
    title = "Too many requests"
    retry_after_s: int

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, field=field, extra=extra)
        self.retry_after_s = retry_after_s
        if headers:
            self.headers = headers


class PayloadTooLargeError(TriviumError):
    status_code = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaTypeError(TriviumError):
    """The request body's Content-Type is not one the route reads."""

    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class UnavailableError(TriviumError):
    """A dependency is down; the caller may retry after `retry_after_s` seconds."""

    status_code = 503
    code = "unavailable"
    title = "Service unavailable"
    retry_after_s: int

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int = 1,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, field=field, extra=extra)
        self.retry_after_s = retry_after_s


class BadGatewayError(TriviumError):
    """An upstream answered, but not usefully (5xx, a protocol error, a refusal)."""

    status_code = 502
    code = "bad_gateway"
    title = "Bad gateway"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, field=field, extra=extra)
        self.retry_after_s = retry_after_s


class GatewayTimeoutError(TriviumError):
    """The request's deadline passed while waiting on an upstream."""

    status_code = 504
    code = "gateway_timeout"
    title = "Gateway timeout"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int | None = 1,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, field=field, extra=extra)
        self.retry_after_s = retry_after_s
