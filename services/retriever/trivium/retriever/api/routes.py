"""HTTP routes of the retriever; the logic lives in `RetrieverService`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from trivium.common.contracts.retriever import (
    CollectionCreate,
    CollectionStats,
    DeleteResult,
    DocumentPage,
    IngestRequest,
    IngestResult,
    SearchRequest,
    SearchResponse,
)
from trivium.common.http.auth import ACTOR_DEPENDENCY
from trivium.retriever.service import RetrieverService

__all__ = ("CollectionController",)

Collection = Annotated[str, Parameter(max_length=63, description="collection name")]


class CollectionController(Controller):
    path = "/v1/collections"
    tags = ["collections"]

    @get("/")
    async def list_collections(self, retriever: RetrieverService) -> list[CollectionStats]:
        return await retriever.collections()

    @post("/", status_code=HTTP_201_CREATED, dependencies={"actor": ACTOR_DEPENDENCY})
    async def create(
        self, retriever: RetrieverService, data: CollectionCreate, actor: str
    ) -> CollectionStats:
        return await retriever.create_collection(data)

    @get("/{collection:str}")
    async def stats(self, retriever: RetrieverService, collection: Collection) -> CollectionStats:
        return await retriever.stats(collection)

    @delete(
        "/{collection:str}",
        status_code=HTTP_204_NO_CONTENT,
        dependencies={"actor": ACTOR_DEPENDENCY},
    )
    async def drop(self, retriever: RetrieverService, collection: Collection, actor: str) -> None:
        await retriever.drop_collection(collection)

    @post(
        "/{collection:str}/documents",
        status_code=HTTP_200_OK,
        dependencies={"actor": ACTOR_DEPENDENCY},
    )
    async def ingest(
        self, retriever: RetrieverService, collection: Collection, data: IngestRequest, actor: str
    ) -> IngestResult:
        """Batch upsert, idempotent by document id and content hash."""
        return await retriever.ingest(collection, data.documents)

    @get("/{collection:str}/documents")
    async def list_documents(
        self,
        retriever: RetrieverService,
        collection: Collection,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[str | None, Parameter(max_length=64)] = None,
    ) -> DocumentPage:
        return await retriever.list_documents(collection, limit, offset)

    @delete(
        "/{collection:str}/documents/{doc_id:path}",
        status_code=HTTP_200_OK,
        dependencies={"actor": ACTOR_DEPENDENCY},
    )
    async def delete_document(
        self, retriever: RetrieverService, collection: Collection, doc_id: str, actor: str
    ) -> Response[DeleteResult]:
        """Delete every chunk of one document; ids may contain '/'."""
        return Response(await retriever.delete_document(collection, doc_id.lstrip("/")))

    @post("/{collection:str}/search", status_code=HTTP_200_OK)
    async def search(
        self, retriever: RetrieverService, collection: Collection, data: SearchRequest
    ) -> SearchResponse:
        return await retriever.search(collection, data)
