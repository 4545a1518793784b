"""The embedded store: Qdrant's own engine in process (qdrant-edge), one shard per collection.

A shard directory may be open in one process only; the engine's calls block, so they run in
worker threads. Writes leave new points in appendable segments; a debounced background
`optimize()` builds the HNSW and payload indexes once writes settle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from trivium.common.aio import cancel_and_wait
from trivium.common.errors import ConflictError, NotFoundError
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

__all__ = ("EdgeStore",)

log = logging.getLogger(__name__)
ID_PAGE = 10_000
_INDEX_TYPES = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}


class EdgeStore:
    backend = "edge"

    def __init__(self, root: Path, optimize_after_s: float = 2.0) -> None:
        self._root = root
        self._optimize_after_s = optimize_after_s
        self._shards: dict[str, qe.EdgeShard] = {}
        self._optimizers: dict[str, asyncio.Task[None]] = {}
        # An optimize() runs on in its thread even when its task is cancelled; closing a shard
        # under it would pull the segments away, so optimize and close take turns.
        self._maintenance = threading.Lock()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in self._root.iterdir() if p.is_dir()):
            self._shards[path.name] = await asyncio.to_thread(qe.EdgeShard.load, str(path))
        log.info("edge store opened", extra={"root": str(self._root), "collections": len(self)})

    def __len__(self) -> int:
        return len(self._shards)

    async def close(self) -> None:
        for task in self._optimizers.values():
            await cancel_and_wait(task)
        shards = list(self._shards.values())
        self._shards.clear()  # first, so that a waiting optimize finds nothing to do
        for shard in shards:
            await asyncio.to_thread(self._flush_and_close, shard)

    async def collections(self) -> list[str]:
        return sorted(self._shards)

    async def exists(self, name: str) -> bool:
        return name in self._shards

    async def create_collection(self, name: str, spec: CollectionSpec) -> None:
        async with self._lock:
            if name in self._shards:
                raise ConflictError(f"collection {name!r} exists", field="name")
            self._shards[name] = await asyncio.to_thread(self._create, name, spec)

    def _create(self, name: str, spec: CollectionSpec) -> qe.EdgeShard:
        quantization = (
            qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
            if spec.quantization
            else None
        )
        config = qe.EdgeConfig(
            vectors={
                DENSE: qe.EdgeVectorParams(
                    size=spec.vector_size,
                    distance=qe.Distance.Cosine,
                    quantization_config=quantization,
                )
            },
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            payload_memory=qe.Memory.Cached,
            hnsw_config=qe.HnswIndexConfig(
                m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct, full_scan_threshold=10_000
            ),
        )
        shard = qe.EdgeShard.create(str(self._root / name), config)
        for field_name, index_type in spec.payload_indexes.items():
            shard.update(
                qe.UpdateOperation.create_field_index(field_name, _INDEX_TYPES[index_type])
            )
        return shard

    async def drop_collection(self, name: str) -> None:
        async with self._lock:
            shard = self._shard(name)
            await cancel_and_wait(self._optimizers.pop(name, None))
            del self._shards[name]
            await asyncio.to_thread(self._flush_and_close, shard)
            await asyncio.to_thread(shutil.rmtree, self._root / name)

    async def info(self, name: str) -> CollectionInfo:
        shard = self._shard(name)
        info = await asyncio.to_thread(shard.info)
        size = shard_vector_size(self._root / name)
        return CollectionInfo(info.points_count, size, info.indexed_vectors_count)

    async def count(self, name: str, where: FilterSpec) -> int:
        shard = self._shard(name)
        request = qe.CountRequest(exact=True, filter=_filter(where))
        return await asyncio.to_thread(shard.count, request)

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        shard = self._shard(name)
        edge_points = [
            qe.Point(
                point.id,
                {DENSE: point.dense, SPARSE: _sparse(point.sparse)},
                point.payload,
            )
            for point in points
        ]
        await asyncio.to_thread(shard.update, qe.UpdateOperation.upsert_points(edge_points))
        self._schedule_optimize(name)

    async def delete(self, name: str, where: FilterSpec) -> None:
        shard = self._shard(name)
        operation = qe.UpdateOperation.delete_points_by_filter(_filter(where) or qe.Filter())
        await asyncio.to_thread(shard.update, operation)
        self._schedule_optimize(name)

    async def scroll(
        self, name: str, where: FilterSpec, limit: int, offset: str | None
    ) -> tuple[list[Scored], str | None]:
        shard = self._shard(name)
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=_filter(where), with_payload=True
        )
        records, next_offset = await asyncio.to_thread(shard.scroll, request)
        scored = [Scored(str(r.id), 0.0, dict(r.payload or {})) for r in records]
        return scored, None if next_offset is None else str(next_offset)

    async def point_ids(self, name: str, where: FilterSpec) -> list[str]:
        shard = self._shard(name)
        return await asyncio.to_thread(self._point_ids, shard, _filter(where))

    @staticmethod
    def _point_ids(shard: qe.EdgeShard, where: qe.Filter | None) -> list[str]:
        ids: list[str] = []
        offset: qe.PointId | None = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=ID_PAGE, filter=where, with_payload=False, with_vector=False
            )
            records, offset = shard.scroll(request)
            ids.extend(str(r.id) for r in records)
            if offset is None:
                return ids

    async def query(self, name: str, query: RoadsQuery) -> QueryResult:
        shard = self._shard(name)
        where = _filter(query.filter)
        roads = [(using, _vector(vector)) for using, vector in query.roads()]
        requests = [
            qe.QueryRequest(
                limit=query.limit,
                query=qe.Query.Nearest(vector, using=using),
                filter=where,
                with_payload=False,
            )
            for using, vector in roads
        ]
        batch = (
            await asyncio.to_thread(shard.query_batch, qe.QueryBatchRequest(requests))
            if requests
            else []
        )
        found = {
            using: [Scored(str(p.id), p.score, {}) for p in points]
            for (using, _), points in zip(roads, batch, strict=True)
        }
        return QueryResult.of(query, found)

    async def payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        shard = self._shard(name)
        records = await asyncio.to_thread(shard.retrieve, list(ids), True, False)
        return {str(r.id): dict(r.payload or {}) for r in records}

    def _shard(self, name: str) -> qe.EdgeShard:
        try:
            return self._shards[name]
        except KeyError:
            raise NotFoundError(f"no collection {name!r}", field="collection") from None

    def _schedule_optimize(self, name: str) -> None:
        previous = self._optimizers.get(name)
        if previous is not None and not previous.done():
            previous.cancel()
        self._optimizers[name] = asyncio.create_task(self._optimize_later(name))

    async def _optimize_later(self, name: str) -> None:
        await asyncio.sleep(self._optimize_after_s)
        shard = self._shards.get(name)
        if shard is None:
            return
        try:
            optimized = await asyncio.to_thread(self._optimize, name, shard)
        except Exception:
            log.exception("edge optimize failed", extra={"collection": name})
            return
        if optimized:
            log.info("edge collection optimized", extra={"collection": name})

    async def optimize_now(self, name: str) -> None:
        """Build indexes immediately (benchmarks, bulk loads)."""
        await asyncio.to_thread(self._optimize, name, self._shard(name))

    def _optimize(self, name: str, shard: qe.EdgeShard) -> bool:
        with self._maintenance:
            if self._shards.get(name) is not shard:
                return False  # dropped or closed while this waited
            return shard.optimize()

    def _flush_and_close(self, shard: qe.EdgeShard) -> None:
        with self._maintenance:
            shard.flush()
            shard.close()


def shard_vector_size(path: Path) -> int:
    """The dense size the engine persisted in the shard's own config file."""
    config = json.loads((path / "edge_config.json").read_text())
    return int(config["vectors"][DENSE]["size"])


def _sparse(vector: SparseVec) -> qe.SparseVector:
    return qe.SparseVector(vector.indices, vector.values)


def _vector(vector: list[float] | SparseVec) -> list[float] | qe.SparseVector:
    return _sparse(vector) if isinstance(vector, SparseVec) else vector


def _filter(spec: FilterSpec) -> qe.Filter | None:
    if spec.empty:
        return None
    return qe.Filter(
        must=[_condition(c) for c in spec.must] or None,
        should=[_condition(c) for c in spec.should] or None,
        must_not=[_condition(c) for c in spec.must_not] or None,
    )


def _condition(condition: Condition) -> qe.FieldCondition:
    if condition.match is not None:
        return qe.FieldCondition(condition.key, match=qe.MatchValue(condition.match))
    if condition.any is not None:
        return qe.FieldCondition(condition.key, match=qe.MatchAny(list(condition.any)))  # type: ignore[arg-type]
    return qe.FieldCondition(condition.key, range=qe.RangeFloat(**(condition.range or {})))
