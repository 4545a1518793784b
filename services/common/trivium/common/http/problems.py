"""Errors as RFC 9457 problem details (`application/problem+json`): the gateway and retriever.

Built on the one mapping `trivium.common.http.error_mapping.problem_from`:

* `problem_body(problem, instance)`: the body, with `code`, `field` and the error's
  extension members (`errors` for validation failures, `upstream_error`, ...).
* `PROBLEM_EXCEPTION_HANDLERS`: Litestar's `exception_handlers` for an app (or any layer);
  status, `Retry-After` and the exception's own headers as the `Problem` says.
  `EXCEPTION_HANDLERS` is the same object, under its older name.
* `problem_event(exc)`: the same body as a server-sent event, `event: error\\ndata: {...}\\n\\n`,
  for a stream that fails after its status was sent.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from trivium.common.errors import TriviumError
from trivium.common.http.error_mapping import Problem, problem_from

__all__ = (
    "EXCEPTION_HANDLERS",
    "HANDLED_EXCEPTIONS",
    "PROBLEM_EXCEPTION_HANDLERS",
    "PROBLEM_JSON",
    "problem_body",
    "problem_event",
    "problem_response",
)

PROBLEM_JSON = "application/problem+json"
HANDLED_EXCEPTIONS: tuple[type[Exception], ...] = (
    TriviumError,
    ValidationException,
    HTTPException,
    Exception,
)
"""The keys of every handler map here. Litestar merges the maps of an app, its routers and
controllers, then picks the handler of the nearest class in the exception's MRO: a layer's map
replaces the app's for every exception only when it has all of these keys."""

_ENCODER = msgspec.json.Encoder()


def problem_body(problem: Problem, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:trivium:error:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.field is not None:
        body["field"] = problem.field
    if instance is not None:
        body["instance"] = instance
    body.update(problem.extra)
    return body


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    path = request.url.path
    problem = problem_from(exc, path=path)
    return Response(
        problem_body(problem, instance=path),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=dict(problem.headers) or None,
    )


def problem_event(exc: Exception) -> bytes:
    """`exc` as the `error` event of a server-sent event stream."""
    return b"event: error\ndata: " + _ENCODER.encode(problem_body(problem_from(exc))) + b"\n\n"


PROBLEM_EXCEPTION_HANDLERS: ExceptionHandlersMap = dict.fromkeys(
    HANDLED_EXCEPTIONS, problem_response
)
EXCEPTION_HANDLERS = PROBLEM_EXCEPTION_HANDLERS
