"""The production store: a Qdrant server through qdrant-client's async API (gRPC preferred).

The same class runs against qdrant-client's local mode (`url: ":memory:"` or a directory
path), which speaks the same client API; tests use it to exercise this path without a server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from trivium.common.errors import ConflictError, NotFoundError
from trivium.retriever.config import StoreSection
from trivium.retriever.search.filters import Condition, FilterSpec
from trivium.retriever.store.base import (
    DENSE,
    SPARSE,
    ChunkPoint,
    CollectionInfo,
    CollectionSpec,
    QueryResult,
    RoadsQuery,
    Scored,
    SparseVec,
)

__all__ = ("QdrantStore", "client_for", "is_local")

log = logging.getLogger(__name__)
ID_PAGE = 10_000
_INDEX_TYPES = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
}


def is_local(section: StoreSection) -> bool:
    return "://" not in (section.url or ":memory:")


def client_for(section: StoreSection) -> AsyncQdrantClient:
    url = section.url or ":memory:"
    if url == ":memory:":
        return AsyncQdrantClient(location=":memory:")
    if "://" not in url:
        return AsyncQdrantClient(path=url)
    api_key = section.api_key.get_secret_value() if section.api_key else None
    return AsyncQdrantClient(
        url=url,
        api_key=api_key,
        prefer_grpc=section.prefer_grpc,
        timeout=int(section.timeout_s),
    )


class QdrantStore:
    backend = "qdrant"

    def __init__(self, client: AsyncQdrantClient, *, local: bool = False) -> None:
        self._client = client
        self._local = local
        """Local mode keeps no payload indexes (and warns when asked for one)."""
        self._known: set[str] = set()

    async def start(self) -> None:
        await self._client.get_collections()

    async def close(self) -> None:
        await self._client.close()

    async def collections(self) -> list[str]:
        response = await self._client.get_collections()
        return sorted(c.name for c in response.collections)

    async def exists(self, name: str) -> bool:
        return await self._client.collection_exists(name)

    async def create_collection(self, name: str, spec: CollectionSpec) -> None:
        if await self.exists(name):
            raise ConflictError(f"collection {name!r} exists", field="name")
        quantization = (
            models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                )
            )
            if spec.quantization
            else None
        )
        await self._client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(size=spec.vector_size, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct),
            quantization_config=quantization,
        )
        if self._local:
            return
        for field_name, index_type in spec.payload_indexes.items():
            await self._client.create_payload_index(name, field_name, _INDEX_TYPES[index_type])

    async def drop_collection(self, name: str) -> None:
        await self._require(name)
        self._known.discard(name)
        await self._client.delete_collection(name)

    async def info(self, name: str) -> CollectionInfo:
        await self._require(name)
        info = await self._client.get_collection(name)
        vectors = info.config.params.vectors
        size = vectors[DENSE].size if isinstance(vectors, dict) else 0
        points = await self._client.count(name, exact=True)
        return CollectionInfo(points.count, size, info.indexed_vectors_count)

    async def count(self, name: str, where: FilterSpec) -> int:
        await self._require(name)
        response = await self._client.count(name, count_filter=_filter(where), exact=True)
        return response.count

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        await self._require(name)
        structs = [
            models.PointStruct(
                id=point.id,
                vector={DENSE: point.dense, SPARSE: _sparse(point.sparse)},
                payload=point.payload,
            )
            for point in points
        ]
        await self._client.upsert(name, structs, wait=True)

    async def delete(self, name: str, where: FilterSpec) -> None:
        await self._require(name)
        selector = models.FilterSelector(filter=_filter(where) or models.Filter())
        await self._client.delete(name, selector, wait=True)

    async def scroll(
        self, name: str, where: FilterSpec, limit: int, offset: str | None
    ) -> tuple[list[Scored], str | None]:
        await self._require(name)
        records, next_offset = await self._client.scroll(
            name, scroll_filter=_filter(where), limit=limit, offset=offset, with_payload=True
        )
        scored = [Scored(str(r.id), 0.0, dict(r.payload or {})) for r in records]
        return scored, None if next_offset is None else str(next_offset)

    async def point_ids(self, name: str, where: FilterSpec) -> list[str]:
        await self._require(name)
        ids: list[str] = []
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = await self._client.scroll(
                name,
                scroll_filter=_filter(where),
                limit=ID_PAGE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
            ids.extend(str(r.id) for r in records)
            if offset is None:
                return ids

    async def query(self, name: str, query: RoadsQuery) -> QueryResult:
        await self._require(name)
        where = _filter(query.filter)
        roads = [
            (using, _sparse(vector) if isinstance(vector, SparseVec) else vector)
            for using, vector in query.roads()
        ]
        requests = [
            models.QueryRequest(
                query=vector, using=using, limit=query.limit, filter=where, with_payload=False
            )
            for using, vector in roads
        ]
        responses = await self._client.query_batch_points(name, requests) if requests else []
        found = {
            using: [Scored(str(p.id), p.score, {}) for p in response.points]
            for (using, _), response in zip(roads, responses, strict=True)
        }
        return QueryResult.of(query, found)

    async def payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        await self._require(name)
        records = await self._client.retrieve(name, list(ids), with_payload=True)
        return {str(r.id): dict(r.payload or {}) for r in records}

    async def _require(self, name: str) -> None:
        """Saves a round trip per call once a collection has been seen."""
        if name in self._known:
            return
        if not await self._client.collection_exists(name):
            raise NotFoundError(f"no collection {name!r}", field="collection")
        self._known.add(name)


def _sparse(vector: SparseVec) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def _filter(spec: FilterSpec) -> models.Filter | None:
    if spec.empty:
        return None
    return models.Filter(
        must=[_condition(c) for c in spec.must] or None,
        should=[_condition(c) for c in spec.should] or None,
        must_not=[_condition(c) for c in spec.must_not] or None,
    )


def _condition(condition: Condition) -> models.FieldCondition:
    if condition.match is not None:
        return models.FieldCondition(
            key=condition.key, match=models.MatchValue(value=condition.match)
        )
    if condition.any is not None:
        return models.FieldCondition(
            key=condition.key,
            match=models.MatchAny(any=list(condition.any)),  # type: ignore[arg-type]
        )
    return models.FieldCondition(key=condition.key, range=models.Range(**(condition.range or {})))
