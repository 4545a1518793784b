"""The gateway's schema patches that depend on the deployment (`auth.mode`)."""

from __future__ import annotations

from typing import Any

from trivium.gateway.openapi import state_scopes


def _document() -> dict[str, Any]:
    def operation(scope: str) -> dict[str, Any]:
        return {"responses": {"200": {}}, "security": [{"bearer": [scope]}]}

    return {
        "paths": {
            "/v1/policy": {"get": operation("read")},
            "/v1/keys": {"post": operation("keys:admin")},
            "/healthz": {"get": {"responses": {"200": {}}}},
        }
    }


def test_each_scoped_route_names_its_scope() -> None:
    document = _document()
    state_scopes("keys", admin_tokens_set=True)(document)
    read = document["paths"]["/v1/policy"]["get"]
    assert read["security"] == [{"bearer": ["read"]}]
    assert read["description"] == "Needs a key with the `read` scope."
    assert "description" not in document["paths"]["/healthz"]["get"]


def test_open_mode_makes_the_credential_optional_where_it_is() -> None:
    document = _document()
    state_scopes("open", admin_tokens_set=True)(document)
    assert document["paths"]["/v1/policy"]["get"]["security"] == [{}, {"bearer": ["read"]}]
    assert document["paths"]["/v1/keys"]["post"]["security"] == [{"bearer": ["keys:admin"]}]
    untokened = _document()
    state_scopes("open", admin_tokens_set=False)(untokened)
    assert untokened["paths"]["/v1/keys"]["post"]["security"][0] == {}
