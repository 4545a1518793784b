"""The gateway's OpenAPI document: its credential, each route's scope and statuses, and what
the types alone cannot say (see `trivium.common.http.openapi`)."""

from __future__ import annotations

from typing import Any

from litestar.openapi import OpenAPIConfig

from trivium.common.contracts.datasets import CASE_ID_PATTERN, MAX_DATASET_BYTES, MAX_DATASET_ROWS
from trivium.common.contracts.trials import ARM_PATTERN, TrialCreate, TrialSummary
from trivium.common.http.openapi import (
    SchemaPatch,
    add_content,
    constrain,
    define,
    describe_structs,
    openapi_config,
    server_sent_event,
    unions_as_any_of,
)
from trivium.gateway.callers.auth import WRITE_SCOPES, AuthMode
from trivium.gateway.callers.keys import ALL_FEATURES
from trivium.gateway.callers.routes import CreateKeyRequest
from trivium.gateway.datasets import DATASET_MEDIA_TYPES
from trivium.gateway.feedback.schemas import MAX_CORRECTION_CHARS, Correction, FeedbackRequest
from trivium.gateway.invoke.openai_routes import ChatRequest
from trivium.gateway.invoke.schemas import InvokeRequest
from trivium.gateway.policy.document import NAME_PATTERN as FEATURE_PATTERN
from trivium.gateway.policy.routes import MAX_POLICY_BYTES, POLICY_MEDIA_TYPES
from trivium.gateway.reviews.schemas import DecisionRequest
from trivium.gateway.route_docs import GATEWAY_COMPONENTS
from trivium.gateway.templates.schemas import (
    PromoteRequest,
    PublishRequest,
    RenderRequest,
    RollbackRequest,
)
from trivium.gateway.trials.routes import CasesPut, StatusChange
from trivium.registry.references import (
    LABEL_PATTERN,
    MAX_VERSION,
    NAME_PATTERN,
    SELECTOR_PATTERN,
)

__all__ = ("gateway_openapi_config", "state_scopes")


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path in document.get("paths", {}).values()
        for operation in path.values()
        if isinstance(operation, dict) and "responses" in operation
    ]


def _scope_of(operation: dict[str, Any]) -> str | None:
    for requirement in operation.get("security", ()):
        for scopes in requirement.values():
            if scopes:
                return str(scopes[0])
    return None


def state_scopes(mode: AuthMode, admin_tokens_set: bool) -> SchemaPatch:
    """Each scoped operation's description names its scope; in `auth.mode: open`, the routes
    that take no credential there (feature routes and reads, and writes while no admin token
    is set) say so with an empty requirement."""

    def patch(document: dict[str, Any]) -> None:
        for operation in _operations(document):
            scope = _scope_of(operation)
            if scope is None:
                continue
            needs = f"Needs a key with the `{scope}` scope."
            credential_optional = mode == "open" and (
                scope not in WRITE_SCOPES or not admin_tokens_set
            )
            if credential_optional:
                needs += " This deployment runs `auth.mode: open`: a credential is optional."
                operation["security"] = [{}, *operation["security"]]
            described = operation.get("description")
            operation["description"] = f"{described}\n\n{needs}" if described else needs

    return patch


_INVOKE_EVENTS = server_sent_event(
    "with `stream: true`: `delta` events (`{text}` as JSON), then one `summary` (the JSON "
    "answer) or one `error` (problem details as JSON)",
    ("delta", "summary", "error"),
)
_CHAT_EVENTS = server_sent_event(
    "with `stream: true`: each `chat.completion.chunk` as JSON, then `[DONE]`; or an "
    "`{error}` as JSON"
)
_RATE_HEADERS = {
    name: {"description": meaning, "schema": {"type": "string"}}
    for name, meaning in {
        "x-ratelimit-limit-requests": "the key's requests per minute (when it has a limit)",
        "x-ratelimit-remaining-requests": "requests left in the window",
        "x-ratelimit-reset-requests": "until the window admits again, e.g. `1.2s`",
        "x-ratelimit-limit-tokens": "the key's tokens per minute (when it has a limit)",
        "x-ratelimit-remaining-tokens": "tokens left in the window",
        "x-ratelimit-reset-tokens": "until the window admits again",
    }.items()
}
INVOKE_PATH = "/v1/features/{feature}/invoke"
DATASET_VERSIONS_PATH = "/v1/datasets/{name}/versions"
CHAT_PATH = "/v1/chat/completions"


def _feature_parameter(document: dict[str, Any]) -> None:
    """The feature's name is checked against the policy (404), not parsed, so the invoke route
    reads it as a plain string; its pattern is stated here."""
    for parameter in document["paths"][INVOKE_PATH]["post"].get("parameters", ()):
        if parameter["name"] == "feature":
            parameter["schema"]["pattern"] = FEATURE_PATTERN


def _rate_limit_headers(document: dict[str, Any]) -> None:
    for path in (INVOKE_PATH, CHAT_PATH):
        responses = document["paths"][path]["post"]["responses"]
        for status in ("200", "429"):
            responses[status].setdefault("headers", {}).update(_RATE_HEADERS)
        responses["429"]["headers"]["Retry-After"] = {
            "description": "seconds until a retry can be admitted",
            "schema": {"type": "string"},
        }


_KEY_FEATURES = {
    "description": 'feature names, or `["*"]` (alone) for every feature',
    "anyOf": [
        {"type": "array", "items": {"const": ALL_FEATURES}, "minItems": 1, "maxItems": 1},
        {
            "type": "array",
            "items": {"type": "string", "pattern": FEATURE_PATTERN},
            "minItems": 1,
            "maxItems": 256,
        },
    ],
}


_TRIAL_ARMS = {
    "description": "the arms (roads or variant names of the feature), each named once",
    "type": "array",
    "items": {"type": "string", "pattern": ARM_PATTERN},
    "minItems": 1,
    "maxItems": 16,
    "uniqueItems": True,
}


def _input_or_messages(document: dict[str, Any]) -> None:
    """An invoke request carries exactly one of `input` and `messages` (a null one is absent)."""
    document["components"]["schemas"]["InvokeRequest"]["anyOf"] = [
        {
            "required": ["input"],
            "properties": {"input": {"type": "object"}, "messages": {"type": "null"}},
        },
        {
            "required": ["messages"],
            "properties": {"messages": {"type": "array"}, "input": {"type": "null"}},
        },
    ]


def _feedback_values(document: dict[str, Any]) -> None:
    """A feedback event's `value` (and `correction`) by its `kind` (checked in
    `trivium.gateway.feedback.schemas.checked_value`, 400 naming the field)."""
    absent = {"type": "null"}
    text = {"type": "string", "minLength": 1, "maxLength": MAX_CORRECTION_CHARS}
    by_kind: list[tuple[list[str], dict[str, Any]]] = [
        (["completed", "escalated"], {"type": "boolean"}),
        (["rating"], {"type": "integer", "minimum": 1, "maximum": 5}),
        (["thumbs"], {"enum": ["up", "down"]}),
    ]
    cases: list[dict[str, Any]] = [
        {
            "required": ["value"],
            "properties": {"kind": {"enum": kinds}, "value": value, "correction": absent},
        }
        for kinds, value in by_kind
    ]
    cases.append(
        {
            "required": ["correction"],
            "properties": {
                "kind": {"const": "corrected"},
                "value": {"anyOf": [{"const": True}, absent]},
                "correction": {
                    "anyOf": [
                        text,
                        {"$ref": "#/components/schemas/Correction", "required": ["label"]},
                        {"$ref": "#/components/schemas/Correction", "required": ["answer"]},
                    ]
                },
            },
        }
    )
    schemas = document["components"]["schemas"]
    schemas["FeedbackRequest"]["anyOf"] = cases
    for member in ("label", "answer"):
        schemas["Correction"]["properties"][member] = {
            "type": "string",
            "minLength": 1,
            "maxLength": 256 if member == "label" else MAX_CORRECTION_CHARS,
        }


def _decision_cases(document: dict[str, Any]) -> None:
    """A review decision's `correction` by `decision` (checked in
    `trivium.gateway.reviews.routes.check_decision`, 400 naming `correction`)."""
    document["components"]["schemas"]["DecisionRequest"]["anyOf"] = [
        {"properties": {"decision": {"const": "approve"}, "correction": {"type": "null"}}},
        {
            "required": ["correction"],
            "properties": {"decision": {"const": "correct"}, "correction": {"type": "string"}},
        },
        {"properties": {"decision": {"const": "reject"}}},
    ]


_REFERENCE_PARTS: dict[str, dict[str, Any]] = {
    "name": {"pattern": NAME_PATTERN},
    "label": {"pattern": LABEL_PATTERN},
    "from": {"pattern": SELECTOR_PATTERN},
    "to": {"pattern": SELECTOR_PATTERN},
    "version": {"minimum": 1, "maximum": MAX_VERSION},
    "selector": {"pattern": SELECTOR_PATTERN},
}


def _registry_references(document: dict[str, Any]) -> None:
    """The registry checks names, labels and selectors itself (400 `malformed_reference`,
    naming the parameter), so the template and dataset routes read them as plain strings; the
    patterns are here."""
    for path, operations in document["paths"].items():
        if not path.startswith(("/v1/templates/", "/v1/datasets/", "/v1/adapters/")):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                parameter["schema"].update(_REFERENCE_PARTS.get(parameter["name"], {}))


def _policy_body(document: dict[str, Any]) -> None:
    """`POST /v1/policy:validate` reads its body itself (YAML; JSON is YAML)."""
    limit = f"at most {MAX_POLICY_BYTES} bytes (larger: 413)"
    document_schema = {
        "type": ["object", "null"],
        "description": f"the policy document (null or empty: the empty policy), {limit}",
    }
    text = {"type": "string", "description": f"the policy file's text, {limit}"}
    document["paths"]["/v1/policy:validate"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            media_type: {"schema": text if media_type == "text/plain" else document_schema}
            for media_type in POLICY_MEDIA_TYPES
        },
    }


def _dataset_body(document: dict[str, Any]) -> None:
    """`POST /v1/datasets/{name}/versions` streams its body itself: the JSONL file."""
    text = {
        "type": "string",
        "description": (
            "the dataset's JSONL file, one case a line (`id`, `input` or `messages`, "
            f"`expected`, `tags`), at most {MAX_DATASET_BYTES} bytes (larger: 413) and "
            f"{MAX_DATASET_ROWS} rows; a bad line is a 400 naming it and its field"
        ),
    }
    document["paths"][DATASET_VERSIONS_PATH]["post"]["requestBody"] = {
        "required": True,
        "content": {media_type: {"schema": text} for media_type in DATASET_MEDIA_TYPES},
    }


def gateway_openapi_config(mode: AuthMode, admin_tokens_set: bool) -> OpenAPIConfig:
    patches: list[SchemaPatch] = [
        describe_structs(
            InvokeRequest,
            ChatRequest,
            CreateKeyRequest,
            PublishRequest,
            PromoteRequest,
            RollbackRequest,
            RenderRequest,
            FeedbackRequest,
            Correction,
            TrialCreate,
            CasesPut,
            StatusChange,
            TrialSummary,
            DecisionRequest,
        ),
        unions_as_any_of,
        define("TrialCreate", "arms", _TRIAL_ARMS),
        constrain("CaseResult", "case_id", pattern=CASE_ID_PATTERN),
        constrain("ChatRequest", "model", pattern=FEATURE_PATTERN),
        define("CreateKeyRequest", "features", _KEY_FEATURES),
        _input_or_messages,
        _registry_references,
        _feedback_values,
        _decision_cases,
        constrain("RenderRequest", "selector", pattern=SELECTOR_PATTERN),
        _policy_body,
        _dataset_body,
        _feature_parameter,
        add_content(INVOKE_PATH, "post", 200, "text/event-stream", _INVOKE_EVENTS),
        add_content(CHAT_PATH, "post", 200, "text/event-stream", _CHAT_EVENTS),
        _rate_limit_headers,
        state_scopes(mode, admin_tokens_set),
    ]
    return openapi_config("Trivium gateway", *patches, components=GATEWAY_COMPONENTS)
