"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: the model
service's whole API and the gateway's OpenAI-compatible routes.

Built on the one mapping `trivium.common.http.error_mapping.problem_from`, so status,
`Retry-After` and the offending field are those a problem+json body would carry:

* `openai_error_body(problem)`: `message` is the problem's detail, prefixed with the field
  when it does not already name it; `param` is the field; `code` the specific code
  (`model_not_found`, `queue_full`, ...); `type` comes from `OPENAI_ERROR_TYPES`.
* `OPENAI_EXCEPTION_HANDLERS`: Litestar's `exception_handlers`, with the same keys as
  `PROBLEM_EXCEPTION_HANDLERS`, so set on a controller or route it replaces an app's problem
  handlers for every exception raised there.
* `openai_error_chunk(exc)`: the body as a streamed chunk, `data: {"error": {...}}\\n\\n`, for a
  stream that fails after its status was sent (the caller still ends it with `data: [DONE]`).

`OPENAI_ERROR_TYPES` follows OpenAI's own API: every client error is an
`invalid_request_error` (a bad key's 401 and an unknown model's 404 included) and every
server error a `server_error`. The official clients pick their exception class from the HTTP
status, not from `type`; `code` is what tells errors of one status apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.types import ExceptionHandlersMap

from trivium.common.http.error_mapping import Problem, problem_from
from trivium.common.http.problems import HANDLED_EXCEPTIONS

__all__ = (
    "OPENAI_ERROR_TYPES",
    "OPENAI_EXCEPTION_HANDLERS",
    "openai_error_body",
    "openai_error_chunk",
    "openai_error_response",
    "openai_error_type",
)

OPENAI_ERROR_TYPES: Mapping[int, str] = {4: "invalid_request_error", 5: "server_error"}
"""OpenAI's `type` per class of HTTP status: 4xx, 5xx."""

_ENCODER = msgspec.json.Encoder()


def openai_error_type(status: int) -> str:
    return OPENAI_ERROR_TYPES.get(status // 100, OPENAI_ERROR_TYPES[5])


def openai_error_body(problem: Problem) -> dict[str, Any]:
    message, field = problem.detail, problem.field
    if field and field not in message:
        message = f"{field}: {message}"
    return {
        "error": {
            "message": message,
            "type": openai_error_type(problem.status),
            "param": field,
            "code": problem.code,
        }
    }


def openai_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    problem = problem_from(exc, path=request.url.path)
    return Response(
        openai_error_body(problem),
        status_code=problem.status,
        headers=dict(problem.headers) or None,
    )


def openai_error_chunk(exc: Exception) -> bytes:
    """`exc` as a chunk of an OpenAI stream."""
    return b"data: " + _ENCODER.encode(openai_error_body(problem_from(exc))) + b"\n\n"


OPENAI_EXCEPTION_HANDLERS: ExceptionHandlersMap = dict.fromkeys(
    HANDLED_EXCEPTIONS, openai_error_response
)
