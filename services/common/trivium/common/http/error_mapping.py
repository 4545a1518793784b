"""The one mapping from an exception to what a caller is told: `problem_from(exc) -> Problem`.

Every error body a service sends is built from a `Problem`, in one of two formats:
RFC 9457 problem details (`trivium.common.http.problems`) or OpenAI's error body
(`trivium.common.http.openai_errors`). What each kind of exception becomes:

* `TriviumError`: its class's status, code and title, its message, `field` and `extra`
  members; `Retry-After` when it has `retry_after_s`.
* Litestar's `ValidationException` (a request body or parameter that does not decode):
  400 `invalid_input`; the field is the first error's `key`, or for an unknown member the
  path to it (from msgspec's "unknown field `x` - at `$.y`", else the key of the object
  holding it); Litestar's error list is the extension member `errors`.
* Litestar's `HTTPException` (401, 404, 405, 413, a malformed body...): its status, a code
  per status (`unauthorized`, `not_found`, ...; `http_error` otherwise), its headers.
* Anything else: 500 `internal_error` with a fixed message; the exception is logged with its
  stack, so nothing about it reaches the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from typing import Any

from litestar.exceptions import HTTPException, ValidationException

from trivium.common.errors import TriviumError

__all__ = ("INTERNAL_ERROR_DETAIL", "Problem", "problem_from")

log = logging.getLogger(__name__)

INTERNAL_ERROR_DETAIL = "internal error; see the service log for this request id"
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
_BODY_KEY = "data"  # Litestar's key for an error in the request body as a whole
_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    431: "header_too_large",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """An error as the caller sees it, whatever the body's format."""

    status: int
    code: str
    """Machine-readable and specific (`model_not_found`, `queue_full`, ...)."""
    title: str
    detail: str
    field: str | None = None
    """The request member at fault, as a path (`input.question`, `messages[0].role`)."""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extension members of a problem body (`errors`, `upstream_error`, ...)."""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


def problem_from(exc: BaseException, *, path: str | None = None) -> Problem:
    """`exc` as a `Problem`; `path` (the request's) only labels the log of an unexpected error."""
    if isinstance(exc, TriviumError):
        return _from_trivium_error(exc)
    if isinstance(exc, ValidationException):
        return _from_validation(exc)
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    log.error("unhandled error", exc_info=exc, extra={"path": path})
    return Problem(
        status=500, code="internal_error", title="Internal error", detail=INTERNAL_ERROR_DETAIL
    )


def _from_trivium_error(exc: TriviumError) -> Problem:
    retry = exc.retry_after_s
    return Problem(
        status=exc.status_code,
        code=exc.code,
        title=exc.title,
        detail=exc.message,
        field=exc.field,
        extra=exc.extra,
        headers=dict(exc.headers) if retry is None else {**exc.headers, "Retry-After": str(retry)},
    )


def _from_validation(exc: ValidationException) -> Problem:
    errors = exc.extra if isinstance(exc.extra, list) else []
    described = [e for e in errors if isinstance(e, dict)]
    messages = [str(e["message"]) for e in described if e.get("message")]
    detail = "; ".join(messages) or exc.detail
    return Problem(
        status=400,
        code="invalid_input",
        title="Invalid input",
        detail=detail,
        field=_offending_field(detail, [str(e["key"]) for e in described if e.get("key")]),
        extra={"errors": errors},
    )


def _offending_field(detail: str, keys: list[str]) -> str | None:
    unknown = _UNKNOWN_FIELD.search(detail) or _MISSING_FIELD.search(detail)
    if unknown is None:
        return keys[0] if keys else None
    name, at = unknown.groups()
    if at is None:  # Litestar drops msgspec's "- at `$...`"; the key names the object instead
        at = keys[0] if keys and keys[0] != _BODY_KEY else ""
    return f"{at}.{name}" if at else name


def _from_http_exception(exc: HTTPException) -> Problem:
    status = exc.status_code
    return Problem(
        status=status,
        code=_HTTP_CODES.get(status, "http_error"),
        title=exc.detail if status < 500 else "Server error",
        detail=exc.detail,
        headers=dict(exc.headers or {}),
    )
