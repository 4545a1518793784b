"""Who is calling an admin route: bearer tokens, and the actor recorded in the audit log.

A service puts its `admin_tokens` (actor name -> token) in `app.state.admin_tokens`. With
none configured, admin routes are open (development) and the actor comes from
`X-Trivium-Actor`; with tokens, a route that asks for `actor` needs a matching bearer token.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from pydantic import SecretStr

__all__ = ("ACTOR_DEPENDENCY", "provide_actor")


def provide_actor(request: Request[Any, Any, Any]) -> str:
    tokens: dict[str, SecretStr] = request.app.state.admin_tokens
    if not tokens:
        return request.headers.get("x-trivium-actor", "anonymous")[:64]
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and supplied:
        for actor, token in tokens.items():
            if hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
                return actor
    raise NotAuthorizedException(
        "admin routes need 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


ACTOR_DEPENDENCY = Provide(provide_actor, sync_to_thread=False)
