"""HTTP: `/v1/keys`, the caller keys' admin API (scope `keys:admin`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trivium.common.errors import InvalidInputError
from trivium.common.http.strict_body import decode_body_strictly
from trivium.gateway.callers.auth import ACTOR, require_scope
from trivium.gateway.callers.keys import (
    ALL_FEATURES,
    KEY_ID_PATTERN,
    KEY_NAME_PATTERN,
    KeyView,
    Scope,
)
from trivium.gateway.callers.store import KeyAuditEntry, KeySpec, KeyStore
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("CreateKeyRequest", "CreatedKeyResponse", "KeyController")

FEATURE_PATTERN = r"^(\*|[a-z0-9][a-z0-9-]{0,62})$"
KeyId = Annotated[str, Parameter(pattern=KEY_ID_PATTERN, description="the key's id")]
_OPT = {"scope": "keys:admin"}
_ADMIN = scoped("keys:admin")
FeatureName = Annotated[str, msgspec.Meta(pattern=FEATURE_PATTERN)]


class CreateKeyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=KEY_NAME_PATTERN)]
    """The metrics label and audit actor: bounded, operator-chosen."""
    owner: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    features: Annotated[list[FeatureName], msgspec.Meta(min_length=1, max_length=256)]
    """Feature names, or `["*"]` for every feature."""
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["invoke"]
    )
    rpm: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    tpm: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None
    budget_usd_day: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None
    budget_usd_month: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None
    expires_at: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Unix seconds; after it the key is refused (401)."""

    def spec(self) -> KeySpec:
        if ALL_FEATURES in self.features and len(self.features) > 1:
            raise InvalidInputError("'*' stands alone: all features", field="features")
        return KeySpec(
            name=self.name,
            owner=self.owner,
            features=tuple(dict.fromkeys(self.features)),
            scopes=tuple(dict.fromkeys(self.scopes)),
            rpm=self.rpm,
            tpm=self.tpm,
            budget_usd_day=self.budget_usd_day,
            budget_usd_month=self.budget_usd_month,
            expires_at=self.expires_at,
        )


class CreatedKeyResponse(msgspec.Struct, frozen=True):
    key: str
    """The full key, `trv_<id>_<secret>`: shown this once; only its hash is stored."""
    record: KeyView


def _store(request: Request[Any, Any, Any]) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    guards = [require_scope]
    dependencies = {"actor": ACTOR}
    before_request = staticmethod(decode_body_strictly)

    @post(
        "/",
        opt=_OPT,
        security=_ADMIN,
        responses=native_errors(400, 409, 413),
        summary="Create a key; the full key is in this answer only",
    )
    async def create(
        self, request: Request[Any, Any, Any], actor: str, data: CreateKeyRequest
    ) -> Response[CreatedKeyResponse]:
        created = await _store(request).create(data.spec(), actor)
        return Response(
            CreatedKeyResponse(created.key, created.record.view()), status_code=HTTP_201_CREATED
        )

    @get(
        "/",
        opt=_OPT,
        security=_ADMIN,
        responses=native_errors(),
        summary="Every key (never a secret)",
    )
    async def list_keys(self, request: Request[Any, Any, Any]) -> list[KeyView]:
        return [record.view() for record in await _store(request).all()]

    @get("/{key_id:str}", opt=_OPT, security=_ADMIN, responses=native_errors(400, 404))
    async def show(self, request: Request[Any, Any, Any], key_id: KeyId) -> KeyView:
        return (await _store(request).get(key_id)).view()

    @get(
        "/{key_id:str}/history",
        opt=_OPT,
        security=_ADMIN,
        responses=native_errors(400, 404),
        summary="The key's audit log",
    )
    async def history(self, request: Request[Any, Any, Any], key_id: KeyId) -> list[KeyAuditEntry]:
        return await _store(request).history(key_id)

    @post(
        "/{key_id:str}/rotate",
        opt=_OPT,
        security=_ADMIN,
        responses=native_errors(400, 404),
        status_code=HTTP_200_OK,
        summary="A new secret for the key; the old one is refused at once",
    )
    async def rotate(
        self, request: Request[Any, Any, Any], actor: str, key_id: KeyId
    ) -> CreatedKeyResponse:
        created = await _store(request).rotate(key_id, actor)
        return CreatedKeyResponse(created.key, created.record.view())

    @post(
        "/{key_id:str}/revoke",
        opt=_OPT,
        security=_ADMIN,
        responses=native_errors(400, 404),
        status_code=HTTP_200_OK,
        summary="Refuse the key from now on (every replica within a second)",
    )
    async def revoke(self, request: Request[Any, Any, Any], actor: str, key_id: KeyId) -> KeyView:
        return (await _store(request).revoke(key_id, actor)).view()
