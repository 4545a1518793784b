"""`/v1/adapters`: register, load, unload, promote, roll back and inspect LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trivium.common.http.auth import ACTOR_DEPENDENCY
from trivium.model.adapters.manager import AdapterManager
from trivium.model.adapters.store import AdapterStore
from trivium.registry import ArtifactVersion, AuditEntry, LabelMove

__all__ = ("AdapterController",)

Name = Annotated[str, Parameter(max_length=64, description="adapter name")]
Label = Annotated[str, Parameter(max_length=32, description="label, e.g. production")]
Version = Annotated[int, msgspec.Meta(ge=1)]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    metadata: dict[str, Any] = {}
    promote: str | None = None


class RegisterResponse(msgspec.Struct):
    name: str
    version: int
    sha256: str
    path: str
    created: bool


class SelectorRequest(msgspec.Struct, forbid_unknown_fields=True):
    selector: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "production"


class LoadState(msgspec.Struct):
    adapter: str
    loaded: bool


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    expected_current: Annotated[int, msgspec.Meta(ge=0)] | None = None


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

    @get("/")
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

    @post("/")
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

    @get("/{name:str}/versions")
    async def versions(self, adapters: AdapterManager, name: Name) -> list[ArtifactVersion]:
        return await adapters.registry.versions(name)

    @post("/{name:str}/load", status_code=HTTP_200_OK)
    async def load(
        self, actor: str, adapters: AdapterManager, name: Name, data: SelectorRequest
    ) -> LoadState:
        adapter_id = await adapters.resolve(f"{name}@{data.selector}")
        return LoadState(adapter_id or name, loaded=True)

    @post("/{name:str}/unload", status_code=HTTP_200_OK)
    async def unload(
        self, actor: str, adapters: AdapterManager, name: Name, data: SelectorRequest
    ) -> LoadState:
        artifact = await adapters.registry.resolve(f"{name}@{data.selector}")
        adapter_id = f"{artifact.name}@{artifact.version}"
        await adapters.unload(adapter_id)
        return LoadState(adapter_id, loaded=False)

    @put("/{name:str}/labels/{label:str}")
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

    @post("/{name:str}/labels/{label:str}/rollback", status_code=HTTP_200_OK)
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

    @get("/{name:str}/history")
    async def history(self, adapters: AdapterManager, name: Name) -> list[AuditEntry]:
        return await adapters.registry.history(name)
