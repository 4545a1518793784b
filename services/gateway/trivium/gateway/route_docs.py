"""What each gateway route states in the OpenAPI document: the credential it takes (with its
scope) and every status it can answer, with the body the gateway sends."""

from __future__ import annotations

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme

from trivium.common.http.openapi import openai_error_responses, problem_responses
from trivium.gateway.callers.keys import Scope

__all__ = ("AUTH_STATUSES", "GATEWAY_COMPONENTS", "native_errors", "openai_errors", "scoped")

GATEWAY_COMPONENTS = Components(
    security_schemes={
        "bearer": SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="trv_<key id>_<secret>",
            description=(
                "a caller key (`trv_<key id>_<secret>`, made with `POST /v1/keys` or `trivium "
                "keys create`) holding the scope the route names, or a bootstrap admin token "
                "(`gateway.admin_tokens`: every scope but `invoke` and `feedback`)"
            ),
        )
    }
)

AUTH_STATUSES = (401, 403, 431, 503)
"""What any route with a scope may answer before it runs: no or a bad key (401), a key
without the scope or the feature (403), an oversize `Authorization` header (431), a key this
replica has not seen while Redis is down (503)."""


def native_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """A native route's `responses=`: `statuses` and the credential's, as problem+json."""
    return problem_responses(*sorted({*statuses, *AUTH_STATUSES}))


def openai_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """An OpenAI route's `responses=`: `statuses` and the credential's, as OpenAI errors."""
    return openai_error_responses(*sorted({*statuses, *AUTH_STATUSES}))


def scoped(scope: Scope) -> list[dict[str, list[str]]]:
    """A route's `security=`: a bearer credential with `scope` (OpenAPI 3.1 lets an http
    scheme's requirement list the roles it needs)."""
    return [{"bearer": [scope]}]
