"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from trivium.common.errors import TriviumError, UnavailableError

__all__ = ("OPENAI_EXCEPTION_HANDLERS", "openai_error_body")

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


def _body(message: str, status: int, param: str | None, code: str) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_error_body(exc: TriviumError) -> dict[str, Any]:
    return _body(exc.message, exc.status_code, exc.field, exc.code)


def handle_trivium_error(request: Request[Any, Any, Any], exc: TriviumError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, UnavailableError) else None
    return Response(openai_error_body(exc), status_code=exc.status_code, headers=headers)


def handle_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    first = next((e for e in errors if isinstance(e, dict)), {})
    message = str(first.get("message") or exc.detail)
    return Response(_body(message, 400, first.get("key"), "invalid_request"), status_code=400)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return Response(
        _body(exc.detail, exc.status_code, None, f"http_{exc.status_code}"),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", extra={"path": request.url.path})
    return Response(_body("internal error", 500, None, "internal_error"), status_code=500)


OPENAI_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    TriviumError: handle_trivium_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
