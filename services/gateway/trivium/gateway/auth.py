"""Who is calling: bearer tokens for registry writes, the actor recorded in the audit log."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from trivium.gateway.config import GatewaySettings

__all__ = ("provide_actor",)


def provide_actor(request: Request[Any, Any, Any]) -> str:
    """The audit actor: the token's owner, or `X-Trivium-Actor` when no tokens are configured."""
    settings: GatewaySettings = request.app.state.settings
    tokens = settings.gateway.admin_tokens
    if not tokens:
        return request.headers.get("x-trivium-actor", "anonymous")[:64]
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and supplied:
        for actor, token in tokens.items():
            if hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
                return actor
    raise NotAuthorizedException(
        "registry writes need 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )
