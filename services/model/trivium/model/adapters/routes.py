"""`/v1/adapters`: register, load, unload, promote, roll back and inspect LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trivium.common.http.auth import ACTOR_DEPENDENCY
from trivium.common.http.openapi import ADMIN_SECURITY, openai_error_responses
from trivium.model.adapters.manager import AdapterManager
from trivium.model.adapters.store import AdapterStore
from trivium.registry import ArtifactVersion, AuditEntry, LabelMove
from trivium.registry.references import (
    LABEL_PATTERN,
    MAX_VERSION,
    NAME_PATTERN,
    SELECTOR_PATTERN,
)

__all__ = ("AdapterController",)

Name = Annotated[str, Parameter(pattern=NAME_PATTERN, description="adapter name")]
Label = Annotated[str, Parameter(pattern=LABEL_PATTERN, description="label, e.g. production")]
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
NameField = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
LabelField = Annotated[str, msgspec.Meta(pattern=LABEL_PATTERN)]
READ_ERRORS = openai_error_responses(400, 404, 503)
WRITE_ERRORS = openai_error_responses(400, 401, 404, 409, 413, 503)


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: NameField
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    """A PEFT adapter directory on the model service's host."""
    metadata: dict[str, Any] = {}
    promote: LabelField | None = None


class RegisterResponse(msgspec.Struct):
    name: str
    version: int
    sha256: str
    path: str
    created: bool


class SelectorRequest(msgspec.Struct, forbid_unknown_fields=True):
    selector: Annotated[str, msgspec.Meta(pattern=SELECTOR_PATTERN)] = "production"
    """A label or a version."""


class LoadState(msgspec.Struct):
    adapter: str
    loaded: bool


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    expected_current: Annotated[int, msgspec.Meta(ge=0, le=MAX_VERSION)] | None = None


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    expected_current: Version | None = None


class AdapterSummary(msgspec.Struct):
    name: str
    latest_version: int
    labels: dict[str, int]
    loaded: list[str]


class AdapterController(Controller):
    path = "/v1/adapters"
    tags = ["adapters"]
    dependencies = {"actor": ACTOR_DEPENDENCY}

    @get("/", responses=openai_error_responses(503))
    async def list_adapters(self, adapters: AdapterManager) -> list[AdapterSummary]:
        loaded = adapters.engine.loaded_adapters()
        return [
            AdapterSummary(
                s.name,
                s.latest_version,
                s.labels,
                sorted(a for a in loaded if a.split("@", 1)[0] == s.name),
            )
            for s in await adapters.registry.list()
        ]

    @post("/", security=ADMIN_SECURITY, responses=WRITE_ERRORS)
    async def register(
        self, actor: str, store: AdapterStore, data: RegisterRequest
    ) -> Response[RegisterResponse]:
        result = await store.register(data.name, Path(data.path), data.metadata, actor=actor)
        artifact = result.artifact
        if data.promote:
            await store.registry.promote(data.name, data.promote, artifact.version, actor=actor)
        body = RegisterResponse(
            data.name, artifact.version, artifact.sha256, artifact.body, result.created
        )
        return Response(body, status_code=HTTP_201_CREATED if result.created else HTTP_200_OK)

    @get("/{name:str}/versions", responses=READ_ERRORS)
    async def versions(self, adapters: AdapterManager, name: Name) -> list[ArtifactVersion]:
        return await adapters.registry.versions(name)

    @post(
        "/{name:str}/load", status_code=HTTP_200_OK, security=ADMIN_SECURITY, responses=WRITE_ERRORS
    )
    async def load(
        self, actor: str, adapters: AdapterManager, name: Name, data: SelectorRequest
    ) -> LoadState:
        adapter_id = await adapters.resolve(f"{name}@{data.selector}")
        return LoadState(adapter_id or name, loaded=True)

    @post(
        "/{name:str}/unload",
        status_code=HTTP_200_OK,
        security=ADMIN_SECURITY,
        responses=WRITE_ERRORS,
    )
    async def unload(
        self, actor: str, adapters: AdapterManager, name: Name, data: SelectorRequest
    ) -> LoadState:
        artifact = await adapters.registry.resolve(f"{name}@{data.selector}")
        adapter_id = f"{artifact.name}@{artifact.version}"
        await adapters.unload(adapter_id)
        return LoadState(adapter_id, loaded=False)

    @put("/{name:str}/labels/{label:str}", security=ADMIN_SECURITY, responses=WRITE_ERRORS)
    async def promote(
        self,
        actor: str,
        adapters: AdapterManager,
        name: Name,
        label: Label,
        data: PromoteRequest,
    ) -> LabelMove:
        move = await adapters.registry.promote(
            name, label, data.version, expected_current=data.expected_current, actor=actor
        )
        adapters.changed.set()
        return move

    @post(
        "/{name:str}/labels/{label:str}/rollback",
        status_code=HTTP_200_OK,
        security=ADMIN_SECURITY,
        responses=WRITE_ERRORS,
    )
    async def rollback(
        self,
        actor: str,
        adapters: AdapterManager,
        name: Name,
        label: Label,
        data: RollbackRequest,
    ) -> LabelMove:
        move = await adapters.registry.rollback(
            name, label, expected_current=data.expected_current, actor=actor
        )
        adapters.changed.set()
        return move

    @get("/{name:str}/history", responses=READ_ERRORS)
    async def history(self, adapters: AdapterManager, name: Name) -> list[AuditEntry]:
        return await adapters.registry.history(name)
