"""HTTP routes of the retriever; the logic lives in `RetrieverService`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from trivium.common.contracts.drift import CollectionDrift
from trivium.common.contracts.retriever import (
    COLLECTION_NAME_PATTERN,
    POINT_ID_PATTERN,
    CollectionCreate,
    CollectionStats,
    DeleteResult,
    DocumentPage,
    IngestRequest,
    IngestResult,
    SearchMode,
    SearchRequest,
    SearchResponse,
)
from trivium.common.http.auth import ACTOR_DEPENDENCY
from trivium.common.http.openapi import ADMIN_SECURITY, problem_responses
from trivium.retriever.service import RetrieverService

__all__ = ("CollectionController",)

Collection = Annotated[
    str, Parameter(pattern=COLLECTION_NAME_PATTERN, max_length=63, description="collection name")
]
DocumentPath = Annotated[str, Parameter(description="document id; may contain '/'")]


class CollectionController(Controller):
    path = "/v1/collections"
    tags = ["collections"]

    @get("/", responses=problem_responses(400))
    async def list_collections(self, retriever: RetrieverService) -> list[CollectionStats]:
        return await retriever.collections()

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        dependencies={"actor": ACTOR_DEPENDENCY},
        security=ADMIN_SECURITY,
        responses=problem_responses(400, 401, 409, 413),
    )
    async def create(
        self, retriever: RetrieverService, data: CollectionCreate, actor: str
    ) -> CollectionStats:
        return await retriever.create_collection(data)

    @get("/{collection:str}", responses=problem_responses(400, 404))
    async def stats(self, retriever: RetrieverService, collection: Collection) -> CollectionStats:
        return await retriever.stats(collection)

    @delete(
        "/{collection:str}",
        status_code=HTTP_204_NO_CONTENT,
        dependencies={"actor": ACTOR_DEPENDENCY},
        security=ADMIN_SECURITY,
        responses=problem_responses(400, 401, 404),
    )
    async def drop(self, retriever: RetrieverService, collection: Collection, actor: str) -> None:
        await retriever.drop_collection(collection)

    @post(
        "/{collection:str}/documents",
        status_code=HTTP_200_OK,
        dependencies={"actor": ACTOR_DEPENDENCY},
        security=ADMIN_SECURITY,
        responses=problem_responses(400, 401, 404, 409, 413),
    )
    async def ingest(
        self, retriever: RetrieverService, collection: Collection, data: IngestRequest, actor: str
    ) -> IngestResult:
        """Batch upsert, idempotent by document id and content hash."""
        return await retriever.ingest(collection, data.documents)

    @get("/{collection:str}/documents", responses=problem_responses(400, 404))
    async def list_documents(
        self,
        retriever: RetrieverService,
        collection: Collection,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[
            str | None,
            Parameter(pattern=POINT_ID_PATTERN, description="a page's `next_offset`"),
        ] = None,
    ) -> DocumentPage:
        return await retriever.list_documents(collection, limit, offset)

    @delete(
        "/{collection:str}/documents/{doc_id:path}",
        status_code=HTTP_200_OK,
        dependencies={"actor": ACTOR_DEPENDENCY},
        security=ADMIN_SECURITY,
        responses=problem_responses(400, 401, 404),
    )
    async def delete_document(
        self, retriever: RetrieverService, collection: Collection, doc_id: DocumentPath, actor: str
    ) -> Response[DeleteResult]:
        """Delete every chunk of one document; ids may contain '/'."""
        return Response(await retriever.delete_document(collection, doc_id.lstrip("/")))

    @post(
        "/{collection:str}/search",
        status_code=HTTP_200_OK,
        responses=problem_responses(400, 404, 413),
    )
    async def search(
        self, retriever: RetrieverService, collection: Collection, data: SearchRequest
    ) -> SearchResponse:
        return await retriever.search(collection, data)

    @get("/{collection:str}/drift", responses=problem_responses(400, 404))
    async def drift(
        self,
        retriever: RetrieverService,
        collection: Collection,
        mode: Annotated[SearchMode, Parameter(description="the searches' mode")] = "hybrid",
    ) -> CollectionDrift:
        """Query and retrieval drift of the collection's searches in one mode against their
        baseline, and the window's query clusters farthest from it (example queries)."""
        return await retriever.drift_report(collection, mode)

    @post(
        "/{collection:str}/drift/baseline",
        status_code=HTTP_200_OK,
        dependencies={"actor": ACTOR_DEPENDENCY},
        security=ADMIN_SECURITY,
        responses=problem_responses(400, 401, 404),
    )
    async def reset_drift(
        self, retriever: RetrieverService, collection: Collection, actor: str
    ) -> list[str]:
        """Every mode of the collection collects a new baseline from its next searches; the
        answer names the tracks reset (`collection/mode`)."""
        return await retriever.reset_drift(collection)
