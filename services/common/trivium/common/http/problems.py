"""One mapping from errors to RFC 9457 problem details, for the gateway and the retriever."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from trivium.common.errors import TriviumError

__all__ = ("EXCEPTION_HANDLERS",)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")


def _problem(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def handle_trivium_error(request: Request[Any, Any, Any], exc: TriviumError) -> Response[Any]:
    headers = None
    if exc.retry_after_s is not None:
        headers = {"Retry-After": str(exc.retry_after_s)}
    return _problem(exc.to_problem(instance=request.url.path), exc.status_code, headers)


def handle_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    fields = [str(e.get("key")) for e in errors if isinstance(e, dict) and e.get("key")]
    messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
    detail = "; ".join(messages) or exc.detail
    body: dict[str, Any] = {
        "type": "urn:trivium:error:invalid_input",
        "title": "Invalid input",
        "status": 400,
        "detail": detail,
        "code": "invalid_input",
        "instance": request.url.path,
        "errors": errors,
    }
    unknown = _UNKNOWN_FIELD.search(detail)
    if unknown is not None:
        name, at = unknown.groups()
        body["field"] = f"{at}.{name}" if at else name
    elif fields:
        body["field"] = fields[0]
    return _problem(body, 400)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = {
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }
    body = {
        "type": f"urn:trivium:error:{code.get(exc.status_code, 'http_error')}",
        "title": exc.detail if exc.status_code < 500 else "Server error",
        "status": exc.status_code,
        "detail": exc.detail,
        "code": code.get(exc.status_code, "http_error"),
        "instance": request.url.path,
    }
    return _problem(body, exc.status_code, exc.headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", extra={"path": request.url.path})
    body = {
        "type": "urn:trivium:error:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "internal error; see the service log for this request id",
        "code": "internal_error",
        "instance": request.url.path,
    }
    return _problem(body, HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    TriviumError: handle_trivium_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
