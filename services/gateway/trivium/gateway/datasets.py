"""HTTP routes over the dataset registry (`/v1/datasets`); the logic lives in
`trivium.registry.datasets`. Reads take the `read` scope, publishing the `trials` scope."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from trivium.common.contracts.datasets import MAX_DATASET_BYTES, MAX_DATASET_ROWS, DatasetRowsPage
from trivium.common.errors import UnsupportedMediaTypeError
from trivium.gateway.callers.auth import ACTOR, require_scope
from trivium.gateway.route_docs import native_errors, scoped
from trivium.registry import ArtifactSummary, AuditEntry
from trivium.registry.datasets import (
    MAX_PAGE_ROWS,
    DatasetStore,
    DatasetTooLargeError,
    parse_dataset,
)
from trivium.registry.references import validate_label, validate_name

__all__ = (
    "DATASET_MEDIA_TYPES",
    "DatasetController",
    "DatasetDetail",
    "DatasetPublished",
    "DatasetVersionSummary",
)

DATASET_MEDIA_TYPES = ("application/x-ndjson", "application/jsonl")
"""What `POST /v1/datasets/{name}/versions` reads: the JSONL file as it is."""

Name = Annotated[str, Parameter(max_length=64, description="dataset name")]
READ = {"scope": "read"}
READ_ONE: dict[str, Any] = {
    "opt": READ,
    "security": scoped("read"),
    "responses": native_errors(400, 404),
}


class DatasetVersionSummary(msgspec.Struct):
    """A version's manifest without its chunk list."""

    version: int
    sha256: str
    created_at: float
    created_by: str
    rows: int
    bytes: int
    rows_sha256: str
    labels: list[str]
    expects: list[str]
    tags: dict[str, int]


class DatasetDetail(msgspec.Struct):
    name: str
    labels: dict[str, int]
    versions: list[DatasetVersionSummary]


class DatasetPublished(msgspec.Struct):
    name: str
    version: int
    sha256: str
    created: bool
    rows: int
    label: str | None = None
    """The label now pointing at `version`, when `label=` was given."""


class DatasetController(Controller):
    path = "/v1/datasets"
    tags = ["datasets"]
    guards = [require_scope]

    @get("/", opt=READ, security=scoped("read"), responses=native_errors())
    async def list_datasets(self, datasets: DatasetStore) -> list[ArtifactSummary]:
        return await datasets.registry.list()

    @get("/{name:str}", **READ_ONE)
    async def show(self, datasets: DatasetStore, name: Name) -> DatasetDetail:
        versions = await datasets.registry.versions(name)
        summaries = []
        for version in versions:
            manifest = datasets.manifest_of(version)
            summaries.append(
                DatasetVersionSummary(
                    version=version.version,
                    sha256=version.sha256,
                    created_at=version.created_at,
                    created_by=version.created_by,
                    rows=manifest.rows,
                    bytes=manifest.bytes,
                    rows_sha256=manifest.rows_sha256,
                    labels=manifest.labels,
                    expects=manifest.expects,
                    tags=manifest.tags,
                )
            )
        return DatasetDetail(name, await datasets.registry.labels(name), summaries)

    @get("/{name:str}/history", **READ_ONE)
    async def history(
        self,
        datasets: DatasetStore,
        name: Name,
        limit: Annotated[int | None, Parameter(ge=1, le=10_000)] = None,
    ) -> list[AuditEntry]:
        return await datasets.registry.history(name, limit)

    @get("/{name:str}/rows", **READ_ONE)
    async def rows(
        self,
        datasets: DatasetStore,
        name: Name,
        selector: Annotated[
            str | None,
            Parameter(
                min_length=1,
                max_length=32,
                description="a label or a version number (default: the latest version)",
            ),
        ] = None,
        offset: Annotated[int, Parameter(ge=0, le=MAX_DATASET_ROWS)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_ROWS)] = 500,
    ) -> DatasetRowsPage:
        version = await datasets.select(name, selector)
        return await datasets.page_of(version, offset, limit)

    @post(
        "/{name:str}/versions",
        opt={"scope": "trials"},
        security=scoped("trials"),
        dependencies={"actor": ACTOR},
        request_max_body_size=MAX_DATASET_BYTES,
        summary="Publish a JSONL file as a dataset version; 400 names every bad line",
        responses={
            HTTP_200_OK: ResponseSpec(
                DatasetPublished, description="the same rows are already a version: none made"
            ),
            **native_errors(400, 404, 409, 413, 415),
        },
    )
    async def publish(
        self,
        request: Request[Any, Any, Any],
        datasets: DatasetStore,
        actor: str,
        name: Name,
        label: Annotated[
            str | None,
            Parameter(min_length=1, max_length=32, description="also point this label at it"),
        ] = None,
    ) -> Response[DatasetPublished]:
        validate_name(name)
        if label is not None:
            validate_label(label)
        lines = await _read_lines(request)
        parsed = await asyncio.to_thread(parse_dataset, lines)
        result = await datasets.publish(name, parsed, actor=actor)
        artifact = result.artifact
        if label is not None:
            await datasets.registry.promote(name, label, artifact.version, actor=actor)
        return Response(
            DatasetPublished(
                name, artifact.version, artifact.sha256, result.created, parsed.manifest.rows, label
            ),
            status_code=HTTP_201_CREATED if result.created else HTTP_200_OK,
        )


def _too_large(size: int | str) -> DatasetTooLargeError:
    return DatasetTooLargeError(
        f"the dataset is {size} bytes; the limit is {MAX_DATASET_BYTES}",
        field="body",
        extra={"limit_bytes": MAX_DATASET_BYTES},
    )


async def _read_lines(request: Request[Any, Any, Any]) -> list[bytes]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in DATASET_MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            f"send the dataset as JSONL: {' or '.join(DATASET_MEDIA_TYPES)} "
            f"(got {media_type or 'no content type'})",
            field="content-type",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DATASET_BYTES:
        raise _too_large(declared)
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > MAX_DATASET_BYTES:
            raise _too_large(f"more than {size}")
        pieces.append(piece)
    return b"".join(pieces).split(b"\n")
