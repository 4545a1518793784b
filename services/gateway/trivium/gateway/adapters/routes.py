"""HTTP reads over the adapter registry (scope `read`). Publishing stays the model service's
job (it checks the weights); the gateway only resolves what it serves and what a trial costs.

A version is shown without its body: that is a path in the model service's adapter store,
meaningless to a caller of the gateway."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import Parameter

from trivium.gateway.callers.auth import require_scope
from trivium.gateway.route_docs import native_errors, scoped
from trivium.gateway.templates.schemas import VersionSummary
from trivium.registry import ArtifactSummary, ArtifactVersion, Registry

__all__ = ("AdapterController", "AdapterDetail", "AdapterVersionView")

Name = Annotated[str, Parameter(max_length=64, description="adapter name")]
Label = Annotated[str, Parameter(max_length=32, description="label, e.g. production")]
READ: dict[str, Any] = {
    "opt": {"scope": "read"},
    "security": scoped("read"),
    "responses": native_errors(400, 404),
}


class AdapterVersionView(msgspec.Struct, frozen=True):
    name: str
    version: int
    sha256: str
    metadata: dict[str, Any]
    """What the publisher recorded: base model, hyper-parameters, metrics, and
    `timings.train_seconds` when the fine-tune recorded its training time."""
    created_at: float
    created_by: str

    @classmethod
    def of(cls, artifact: ArtifactVersion) -> AdapterVersionView:
        return cls(
            artifact.name,
            artifact.version,
            artifact.sha256,
            artifact.metadata,
            artifact.created_at,
            artifact.created_by,
        )


class AdapterDetail(msgspec.Struct, frozen=True):
    name: str
    labels: dict[str, int]
    versions: list[VersionSummary]


class AdapterController(Controller):
    path = "/v1/adapters"
    tags = ["adapters"]
    guards = [require_scope]

    @get("/", **{**READ, "responses": native_errors()})
    async def list_adapters(self, adapters: Registry) -> list[ArtifactSummary]:
        return await adapters.list()

    @get("/{name:str}", **READ)
    async def show(self, adapters: Registry, name: Name) -> AdapterDetail:
        versions = await adapters.versions(name)
        summaries = [
            VersionSummary(v.version, v.sha256, v.created_at, v.created_by) for v in versions
        ]
        return AdapterDetail(name, await adapters.labels(name), summaries)

    @get("/{name:str}/versions/{version:int}", **READ)
    async def get_version(self, adapters: Registry, name: Name, version: int) -> AdapterVersionView:
        return AdapterVersionView.of(await adapters.get(name, version))

    @get("/{name:str}/labels/{label:str}", **READ)
    async def resolve_label(
        self, adapters: Registry, name: Name, label: Label
    ) -> AdapterVersionView:
        return AdapterVersionView.of(await adapters.resolve(f"{name}@{label}"))
