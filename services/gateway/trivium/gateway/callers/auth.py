"""Who is calling: the `Authorization: Bearer` credential checked once per request.

Two kinds of credential: caller keys (`trv_<id>_<secret>`, in Redis, cached in process) and
the bootstrap admin tokens of `gateway.admin_tokens` (actor name -> token), which act as
keys with every admin scope (`ADMIN_SCOPES`: all but `invoke` and `feedback`).

`gateway.auth.mode`:
* `keys`: every route but health, metrics and the schema needs a credential with the
  route's scope; a feature route also needs the feature among the key's features.
* `open` (development, loopback): feature routes take no credential; admin reads are open;
  admin writes need an admin token (or a key with the scope) when tokens are configured,
  else they are open and the actor comes from `X-Trivium-Actor`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from pydantic import SecretStr

from trivium.gateway.callers.cache import KeyCache
from trivium.gateway.callers.errors import (
    ForbiddenFeatureError,
    MissingScopeError,
    OversizeAuthorizationError,
    invalid_key,
    missing_key,
)
from trivium.gateway.callers.keys import (
    ADMIN_SCOPES,
    MAX_AUTHORIZATION_CHARS,
    KeyRecord,
    Scope,
    hash_secret,
    parse_key,
    secrets_match,
)
from trivium.gateway.callers.metrics import CALLER_METRICS

__all__ = (
    "ACTOR",
    "ANONYMOUS",
    "AuthMode",
    "Authenticator",
    "Caller",
    "require_scope",
    "scope_of",
)

AuthMode = Literal["keys", "open"]
WRITE_SCOPES: frozenset[Scope] = frozenset(
    {"templates:write", "policy:reload", "keys:admin", "trials", "review"}
)
_DUMMY_HASH = hash_secret(b"dummy", "dummy")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller (or the anonymous one of open mode)."""

    name: str
    """The key's name, or the admin token's actor: the metrics label and the audit actor."""
    scopes: frozenset[Scope]
    record: KeyRecord | None = None
    """The key, when the caller is one (limits, budgets, features); None for an admin token."""

    def allows_feature(self, feature: str) -> bool:
        return self.record is None or self.record.allows_feature(feature)


ANONYMOUS = Caller("anonymous", frozenset())


class Authenticator:
    def __init__(self, mode: AuthMode, keys: KeyCache, admin_tokens: dict[str, SecretStr]) -> None:
        self.mode = mode
        self.keys = keys
        self._pepper = keys.store.pepper
        self._admins = tuple(
            (actor, token.get_secret_value().encode()) for actor, token in admin_tokens.items()
        )
        self._admin_callers = {actor: Caller(actor, ADMIN_SCOPES) for actor, _ in self._admins}
        self._key_callers: dict[tuple[str, str], Caller] = {}

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller this header names; 401 (the same body for every bad key), 431, 503."""
        if not authorization:
            CALLER_METRICS.rejected("unauthenticated")
            raise missing_key()
        if len(authorization) > MAX_AUTHORIZATION_CHARS:
            CALLER_METRICS.rejected("unauthenticated")
            raise OversizeAuthorizationError(
                f"the Authorization header is longer than {MAX_AUTHORIZATION_CHARS} characters",
                field="authorization",
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            CALLER_METRICS.rejected("unauthenticated")
            raise invalid_key()
        parsed = parse_key(token)
        if parsed is None:
            return self._admin(token)
        record = await self.keys.get(parsed.key_id)
        stored = record.secret_hash if record is not None else _DUMMY_HASH
        if (
            not secrets_match(self._pepper, parsed.secret, stored)
            or record is None
            or record.revoked_at is not None
            or record.expired()
        ):
            CALLER_METRICS.rejected("unauthenticated")
            raise invalid_key()
        # One Caller per record version: no allocation per request.
        cached = self._key_callers.get((record.id, record.secret_hash))
        if cached is None or cached.record is not record:
            if len(self._key_callers) >= 100_000:
                self._key_callers.clear()
            cached = Caller(record.name, frozenset(record.scopes), record)
            self._key_callers[(record.id, record.secret_hash)] = cached
        return cached

    def _admin(self, token: str) -> Caller:
        supplied = token.encode()
        found: str | None = None
        for actor, expected in self._admins:  # every token compared: constant time overall
            if hmac.compare_digest(supplied, expected):
                found = actor
        if found is None:
            CALLER_METRICS.rejected("unauthenticated")
            raise invalid_key()
        return self._admin_callers[found]

    async def for_feature(self, authorization: str | None, feature: str) -> Caller:
        """The caller of a feature route: `invoke`, and the feature among the key's."""
        if self.mode == "open":
            return ANONYMOUS
        caller = await self.authenticate(authorization)
        self.require(caller, "invoke")
        if not caller.allows_feature(feature):
            CALLER_METRICS.rejected("forbidden_feature")
            raise ForbiddenFeatureError(
                f"this key may not call feature {feature!r}",
                field="feature",
                extra={"feature": feature},
            )
        return caller

    async def for_models(self, authorization: str | None) -> Caller:
        """The caller of `GET /v1/models`: `invoke` (it lists the features the key may call)."""
        if self.mode == "open":
            return ANONYMOUS
        caller = await self.authenticate(authorization)
        self.require(caller, "invoke")
        return caller

    def require(self, caller: Caller, scope: Scope, *, field: str = "authorization") -> None:
        """403 unless the caller holds `scope`; `field` names what needed it."""
        if scope not in caller.scopes:
            CALLER_METRICS.rejected("forbidden_scope")
            what = "this route" if field == "authorization" else f"`{field}`"
            raise MissingScopeError(
                f"{what} needs the {scope!r} scope (this key has: {_listed(caller.scopes)})",
                field=field,
                extra={"scope": scope},
            )

    async def for_route(self, authorization: str | None, scope: Scope, actor_hint: str) -> Caller:
        """The caller of an admin or read route needing `scope`."""
        if self.mode == "open" and (scope not in WRITE_SCOPES or not self._admins):
            return Caller(actor_hint[:64] or "anonymous", frozenset())
        caller = await self.authenticate(authorization)
        self.require(caller, scope)
        return caller


def _listed(scopes: frozenset[Scope]) -> str:
    return ", ".join(sorted(scopes)) or "none"


def scope_of(handler: BaseRouteHandler) -> Scope:
    scope: Scope = handler.opt["scope"]
    return scope


async def require_scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard: the route's `opt={"scope": ...}`; the caller lands in request state.
    A path's automatic OPTIONS answer (its `Allow` header, nothing else) needs no scope."""
    automatic_options = isinstance(handler, HTTPRouteHandler) and handler.http_methods == {
        "OPTIONS"
    }
    if automatic_options and "scope" not in handler.opt:
        return
    authenticator: Authenticator = connection.app.state.authenticator
    headers = connection.headers
    connection.state.caller = await authenticator.for_route(
        headers.get("authorization"), scope_of(handler), headers.get("x-trivium-actor", "")
    )


def _provide_actor(request: Any) -> str:
    caller: Caller = request.state.caller
    return caller.name


ACTOR = Provide(_provide_actor, sync_to_thread=False)
"""The audit actor of an admin write: the caller the guard let in."""
