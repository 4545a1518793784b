"""OpenAPI schemas that say what a service does: its error bodies, statuses, auth and limits.

Litestar documents a route's success answer and a generic 400 of its own shape; everything
else a service answers is stated here, in one place every service uses:

* `problem_responses(*statuses)` / `openai_error_responses(*statuses)`: a route's `responses=`,
  each status with the body `trivium.common.http.problems` (`application/problem+json`) or
  `trivium.common.http.openai_errors` (`application/json`) actually sends.
* `ADMIN_SECURITY` on a route that needs an admin bearer token, with `BEARER_COMPONENTS` in
  the app's `OpenAPIConfig`.
* `openapi_config(title, *patches)`: the app's `OpenAPIConfig`; `/schema/openapi.json` (and
  `/schema`) serve the generated document after `patches` ran over it once. Litestar cannot
  state some things from types alone, so patches do: `describe_structs(*bodies)` (each
  msgspec struct with `forbid_unknown_fields` gets `additionalProperties: false`; bounds of 0,
  which Litestar drops, are stated), `constrain(...)`
  (a limit read from the deployment's settings, such as `maximum` of `k`), `add_content(...)`
  (a second media type of an answer, such as `text/event-stream`, whose events
  `server_sent_event(...)` describes), `define(...)` (a
  member written as JSON Schema), `unions_as_any_of` (Litestar states a union as `oneOf`,
  which refuses a value two branches accept, such as `0` for `int | float`; msgspec takes any
  branch that fits).
* `answer_options_with_every_method(app)`: Litestar 2 gives each path's automatic OPTIONS
  handler the methods of the first route handler registered on it (litestar#4169, fixed in
  3.0), so `Allow` omits the others; this gives it every method of the path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from trivium.common.http.problems import PROBLEM_JSON

__all__ = (
    "ADMIN_SECURITY",
    "BEARER_COMPONENTS",
    "OpenAIErrorBody",
    "OpenAIErrorDetail",
    "ProblemDetails",
    "SchemaPatch",
    "add_content",
    "answer_options_with_every_method",
    "constrain",
    "define",
    "describe_structs",
    "openai_error_responses",
    "openapi_config",
    "problem_responses",
    "server_sent_event",
    "unions_as_any_of",
)

SchemaPatch = Callable[[dict[str, Any]], None]
"""Changes a generated OpenAPI document (a dict, as served) in place."""

ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
BEARER_COMPONENTS = Components(
    security_schemes={
        "bearer": SecurityScheme(
            type="http",
            scheme="bearer",
            description="an admin token (`admin_tokens`); while none is configured, open",
        )
    }
)


class ProblemDetails(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details, as `trivium.common.http.problems.problem_body` builds them."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    """Machine-readable: `invalid_input`, `not_found`, `label_conflict`, ..."""
    field: str | msgspec.UnsetType = msgspec.UNSET
    """The request member at fault, as a path (`documents[0].text`)."""
    instance: str | msgspec.UnsetType = msgspec.UNSET
    errors: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    """Every validation error of a request that did not decode."""


class OpenAIErrorDetail(msgspec.Struct):
    message: str
    type: str
    """`invalid_request_error` (4xx) or `server_error` (5xx)."""
    param: str | None
    """The request member at fault."""
    code: str
    """Machine-readable: `model_not_found`, `context_length_exceeded`, `queue_full`, ..."""


class OpenAIErrorBody(msgspec.Struct):
    """OpenAI's error shape, as `trivium.common.http.openai_errors.openai_error_body` builds it."""

    error: OpenAIErrorDetail


_MEANINGS = {
    400: "the request, a parameter or a body member is invalid (`field` / `param` names it)",
    401: "no valid bearer credential (`Authorization: Bearer ...`) for a route that needs one",
    403: "the credential is valid but lacks the route's scope (or the feature)",
    404: "a named resource does not exist",
    409: "the request conflicts with the resource's state",
    413: "the body or a member of it is larger than this deployment allows",
    415: "the body's Content-Type is not one the route reads",
    422: "the body is well-formed but its content is invalid",
    429: "a rate limit or budget is spent; retry after `Retry-After` seconds",
    431: "a header (`Authorization`) is larger than allowed",
    502: "an upstream answered, but not usefully",
    503: "a dependency is unavailable; retry after `Retry-After` seconds",
    504: "the request's deadline passed",
}


def _description(status: int) -> str:
    return _MEANINGS.get(status, HTTPStatus(status).phrase)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            ProblemDetails,
            description=_description(status),
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }


def openai_error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            OpenAIErrorBody, description=_description(status), generate_examples=False
        )
        for status in statuses
    }


class _PatchedJsonRenderPlugin(JsonRenderPlugin):
    def __init__(self, patches: tuple[SchemaPatch, ...]) -> None:
        super().__init__(path=["/openapi.json", "/"])
        self._patches = patches
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            document = copy.deepcopy(openapi_schema)
            for patch in self._patches:
                patch(document)
            self._rendered = self.render_json(request, document)
        return self._rendered


def openapi_config(
    title: str, *patches: SchemaPatch, components: Components | None = None
) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=title,
        version="0.1.0",
        path="/schema",
        components=components or BEARER_COMPONENTS,
        render_plugins=[_PatchedJsonRenderPlugin(patches)],
    )


def _structs_within(info: msgspec.inspect.Type, seen: set[type]) -> Iterator[type[msgspec.Struct]]:
    if isinstance(info, msgspec.inspect.StructType):
        if info.cls in seen:
            return
        seen.add(info.cls)
        yield info.cls
        for field in info.fields:
            yield from _structs_within(field.type, seen)
        return
    for value in vars(info).values() if hasattr(info, "__dict__") else _slots(info):
        for inner in value if isinstance(value, tuple) else (value,):
            if isinstance(inner, msgspec.inspect.Type):
                yield from _structs_within(inner, seen)


def _slots(info: msgspec.inspect.Type) -> Iterator[Any]:
    for klass in type(info).__mro__:
        for name in getattr(klass, "__slots__", ()):
            yield getattr(info, name, None)


def describe_structs(*request_structs: type[msgspec.Struct]) -> SchemaPatch:
    """What Litestar leaves out of the components of `request_structs` (the routes' bodies) and
    the structs within them: `additionalProperties: false` where unknown fields are refused,
    and bounds of 0 (`ge=0`, `gt=0`), which it drops."""
    seen: set[type] = set()
    structs = [
        struct
        for info in msgspec.inspect.multi_type_info(request_structs)
        for struct in _structs_within(info, seen)
    ]

    def patch(document: dict[str, Any]) -> None:
        schemas = document.get("components", {}).get("schemas", {})
        for struct in structs:
            schema = schemas.get(struct.__name__)
            if schema is None:
                continue
            if struct.__struct_config__.forbid_unknown_fields:
                schema["additionalProperties"] = False
            info = msgspec.inspect.type_info(struct)
            assert isinstance(info, msgspec.inspect.StructType)
            for field in info.fields:
                bounds = _zero_bounds(field.type)
                if bounds and field.encode_name in schema.get("properties", {}):
                    for branch in _branches(schema["properties"][field.encode_name]):
                        if branch.get("type") in ("integer", "number", None):
                            branch.update(bounds)

    return patch


_ZERO_BOUNDS = {
    "ge": "minimum",
    "gt": "exclusiveMinimum",
    "le": "maximum",
    "lt": "exclusiveMaximum",
}


def _zero_bounds(info: msgspec.inspect.Type) -> dict[str, int]:
    if isinstance(info, msgspec.inspect.UnionType):
        return {k: v for member in info.types for k, v in _zero_bounds(member).items()}
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return {keyword: 0 for name, keyword in _ZERO_BOUNDS.items() if getattr(info, name) == 0}
    return {}


def unions_as_any_of(document: Any) -> None:
    if isinstance(document, dict):
        if "oneOf" in document:
            document["anyOf"] = document.pop("oneOf")
        for value in document.values():
            unions_as_any_of(value)
    elif isinstance(document, list):
        for value in document:
            unions_as_any_of(value)


def _branches(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The schema itself, or each non-null branch of an optional one."""
    union = schema.get("oneOf") or schema.get("anyOf")
    if union is None:
        yield schema
        return
    for branch in union:
        if branch.get("type") != "null":
            yield branch


def constrain(component: str, member: str, **keywords: Any) -> SchemaPatch:
    """Add JSON Schema keywords (`maximum=100`, `maxLength=2000`, `const=False`) to a member."""

    def patch(document: dict[str, Any]) -> None:
        member_schema = document["components"]["schemas"][component]["properties"][member]
        for branch in _branches(member_schema):
            branch.update(keywords)

    return patch


def add_content(
    path: str, method: str, status: int, media_type: str, schema: Mapping[str, Any]
) -> SchemaPatch:
    """Document a second media type of one answer (a route that streams on request)."""

    def patch(document: dict[str, Any]) -> None:
        response = document["paths"][path][method]["responses"][str(status)]
        response.setdefault("content", {})[media_type] = {"schema": dict(schema)}

    return patch


def server_sent_event(data: str, events: tuple[str, ...] = ("message",)) -> dict[str, Any]:
    """The schema of one event of a `text/event-stream` answer, for `add_content`: as in
    OpenAPI 3.2 (and as schemathesis reads it), each event is an object with its `event` name
    (`message` when the stream names none) and its `data` text, described by `data`."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": list(events)},
            "data": {"type": "string", "description": data},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


def define(component: str, member: str, schema: Mapping[str, Any]) -> SchemaPatch:
    """Replace a member's schema with one written as JSON Schema (a grammar types cannot say)."""

    def patch(document: dict[str, Any]) -> None:
        properties = document["components"]["schemas"][component]["properties"]
        properties[member] = copy.deepcopy(dict(schema))

    return patch


def answer_options_with_every_method(app: Litestar) -> Litestar:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"} and handler.handler_name == "options_handler":
                handler._fn = route.create_options_handler(route.path).fn
    return app
