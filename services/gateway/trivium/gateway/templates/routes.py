"""HTTP routes over the template registry; the logic lives in trivium.registry."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post, put
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trivium.common.http.strict_body import decode_body_strictly
from trivium.gateway.callers.auth import ACTOR, require_scope
from trivium.gateway.route_docs import native_errors, scoped
from trivium.gateway.templates.schemas import (
    DiffResponse,
    PromoteRequest,
    PublishRequest,
    PublishResponse,
    RenderRequest,
    RenderResponse,
    RollbackRequest,
    TemplateDetail,
    VersionSummary,
)
from trivium.registry import ArtifactSummary, ArtifactVersion, AuditEntry, LabelMove, Registry
from trivium.registry.templates import TemplateRenderer

__all__ = ("TemplateController",)

Name = Annotated[str, Parameter(max_length=64, description="template name")]
Label = Annotated[str, Parameter(max_length=32, description="label, e.g. production")]
READ = {"scope": "read"}
WRITE = {"scope": "templates:write"}
READ_ALL: dict[str, Any] = {"opt": READ, "security": scoped("read"), "responses": native_errors()}
READ_ONE: dict[str, Any] = {
    "opt": READ,
    "security": scoped("read"),
    "responses": native_errors(400, 404),
}
WRITE_ONE: dict[str, Any] = {
    "opt": WRITE,
    "security": scoped("templates:write"),
    "responses": native_errors(400, 404, 409, 413),
}


class TemplateController(Controller):
    path = "/v1/templates"
    tags = ["templates"]
    guards = [require_scope]
    dependencies = {"actor": ACTOR}
    before_request = staticmethod(decode_body_strictly)

    @get("/", **READ_ALL)
    async def list_templates(self, templates: Registry) -> list[ArtifactSummary]:
        return await templates.list()

    @get("/{name:str}", **READ_ONE)
    async def show(self, templates: Registry, name: Name) -> TemplateDetail:
        versions = await templates.versions(name)
        summaries = [
            VersionSummary(v.version, v.sha256, v.created_at, v.created_by) for v in versions
        ]
        return TemplateDetail(name, await templates.labels(name), summaries)

    @get("/{name:str}/versions/{version:int}", **READ_ONE)
    async def get_version(self, templates: Registry, name: Name, version: int) -> ArtifactVersion:
        return await templates.get(name, version)

    @get("/{name:str}/labels/{label:str}", **READ_ONE)
    async def resolve_label(self, templates: Registry, name: Name, label: Label) -> ArtifactVersion:
        return await templates.resolve(f"{name}@{label}")

    @post(
        "/{name:str}/versions",
        **{
            **WRITE_ONE,
            "responses": {
                HTTP_200_OK: ResponseSpec(
                    PublishResponse, description="the latest version has this body: none made"
                ),
                **WRITE_ONE["responses"],
            },
        },
    )
    async def publish(
        self, templates: Registry, actor: str, name: Name, data: PublishRequest
    ) -> Response[PublishResponse]:
        result = await templates.publish(name, data.body, data.metadata, actor=actor)
        artifact = result.artifact
        return Response(
            PublishResponse(name, artifact.version, artifact.sha256, result.created),
            status_code=HTTP_201_CREATED if result.created else HTTP_200_OK,
        )

    @put("/{name:str}/labels/{label:str}", **WRITE_ONE)
    async def promote(
        self, templates: Registry, actor: str, name: Name, label: Label, data: PromoteRequest
    ) -> LabelMove:
        return await templates.promote(
            name, label, data.version, expected_current=data.expected_current, actor=actor
        )

    @post("/{name:str}/labels/{label:str}/rollback", status_code=HTTP_200_OK, **WRITE_ONE)
    async def rollback(
        self, templates: Registry, actor: str, name: Name, label: Label, data: RollbackRequest
    ) -> LabelMove:
        return await templates.rollback(
            name, label, expected_current=data.expected_current, actor=actor
        )

    @get("/{name:str}/history", **READ_ONE)
    async def history(
        self,
        templates: Registry,
        name: Name,
        limit: Annotated[int | None, Parameter(ge=1, le=10_000)] = None,
    ) -> list[AuditEntry]:
        return await templates.history(name, limit)

    @get("/{name:str}/diff", **READ_ONE)
    async def diff(
        self,
        templates: Registry,
        name: Name,
        old: Annotated[str, Parameter(query="from", min_length=1, max_length=64)],
        new: Annotated[str, Parameter(query="to", min_length=1, max_length=64)],
    ) -> DiffResponse:
        return DiffResponse(name, old, new, await templates.diff(name, old, new))

    @post(
        "/{name:str}/render",
        status_code=HTTP_200_OK,
        **{**READ_ONE, "responses": native_errors(400, 404, 413)},
    )
    async def render(
        self, templates: Registry, renderer: TemplateRenderer, name: Name, data: RenderRequest
    ) -> RenderResponse:
        template = await templates.resolve(f"{name}@{data.selector}")
        return RenderResponse(template.ref, renderer.render(template, data.variables))
