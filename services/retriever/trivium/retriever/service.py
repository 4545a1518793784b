"""The retriever's use cases: collections, idempotent ingest, delete, and hybrid search."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from trivium.common.contracts.drift import CollectionDrift
from trivium.common.contracts.retriever import (
    MAX_RERANK_TOP,
    CollectionCreate,
    CollectionStats,
    DeleteResult,
    DocumentIn,
    DocumentPage,
    DocumentSummary,
    FusionWeights,
    IngestResult,
    SearchHit,
    SearchMode,
    SearchRequest,
    SearchResponse,
    SearchScores,
)
from trivium.common.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from trivium.retriever.api.metrics import CHUNKS, DOCUMENTS, SEARCHES, STAGE_SECONDS
from trivium.retriever.config import RetrieverSection
from trivium.retriever.drift import QueryDriftMonitor
from trivium.retriever.indexing.documents import (
    ChunkDraft,
    IndexRecipe,
    chunk_document,
    content_hash,
    embedding_text,
)
from trivium.retriever.indexing.versions import DigestCache, id_digest, index_version
from trivium.retriever.search.batching import QueryBatcher
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.search.filters import Condition, FilterSpec, parse_filter
from trivium.retriever.search.fusion import reciprocal_rank_fusion
from trivium.retriever.search.rerank import RerankCandidate, Reranker
from trivium.retriever.semantic_cache import SemanticCache, is_cache_collection
from trivium.retriever.store.base import (
    ChunkPoint,
    CollectionSpec,
    QueryResult,
    RoadsQuery,
    Scored,
    VectorStore,
)

__all__ = ("RetrieverService",)

log = logging.getLogger(__name__)
UPSERT_BATCH = 256
FIRST_CHUNK = Condition("chunk_index", match=0)


class RetrieverService:
    def __init__(
        self,
        section: RetrieverSection,
        store: VectorStore,
        dense: DenseEmbedder,
        sparse: SparseEmbedder,
        reranker: Reranker | None,
    ) -> None:
        self.settings = section
        self.store = store
        self.dense = dense
        self.sparse = sparse
        self.reranker = reranker
        bm25 = section.bm25
        self.recipe = IndexRecipe(
            embedding_model=dense.name,
            max_chars=section.chunking.max_chars,
            overlap_chars=section.chunking.overlap_chars,
            bm25=f"{bm25.k1}:{bm25.b}:{bm25.avg_len}:{bm25.language}",
        )
        embedding = section.embedding
        self.queries = QueryBatcher(
            dense.embed,
            max_batch=embedding.query_batch_size,
            max_wait_s=embedding.query_batch_wait_ms / 1000,
        )
        self._write_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._digests = DigestCache(section.store.index_version_max_age_s)
        self.cache = SemanticCache(store, dense, self.index_version, section.search.max_query_chars)
        self.drift = QueryDriftMonitor(section.drift)

    # -- collections ---------------------------------------------------------------------

    async def create_collection(self, request: CollectionCreate) -> CollectionStats:
        store = self.settings.store
        quantization = request.quantization or store.quantization
        indexes = dict(CollectionSpec(vector_size=0).payload_indexes)
        indexes.update(store.filter_fields)
        spec = CollectionSpec(
            vector_size=self.dense.dimension,
            quantization=quantization == "int8",
            hnsw_m=store.hnsw_m,
            hnsw_ef_construct=store.hnsw_ef_construct,
            payload_indexes=indexes,
        )
        await self.store.create_collection(request.name, spec)
        log.info("collection created", extra={"collection": request.name})
        return await self.stats(request.name)

    async def collections(self) -> list[CollectionStats]:
        return [await self.stats(name) for name in await self._document_collections()]

    async def _document_collections(self) -> list[str]:
        """The store's collections less the semantic cache's namespaces."""
        return [name for name in await self.store.collections() if not is_cache_collection(name)]

    async def stats(self, name: str) -> CollectionStats:
        info = await self.store.info(name)
        documents = await self.store.count(name, FilterSpec(must=(FIRST_CHUNK,)))
        return CollectionStats(
            name=name,
            backend=self.store.backend,
            points=info.points,
            documents=documents,
            vector_size=info.vector_size,
            embedding_model=self.dense.name,
            index_version=await self.index_version(name),
            indexed_vectors=info.indexed_vectors,
        )

    async def index_version(self, name: str) -> str:
        """The collection's content and this service's recipe (see `indexing/versions.py`); the
        first call per collection scans every point id, under the write lock, so no write of
        this process lands between the scan and the digest."""
        digest = self._digests.fresh(name)
        if digest is None:
            async with self._write_locks[name]:
                digest = self._digests.fresh(name)
                if digest is None:
                    began = time.perf_counter()
                    ids = await self.store.point_ids(name, FilterSpec())
                    digest = id_digest(ids)
                    self._digests.put(name, digest)
                    seconds = time.perf_counter() - began
                    STAGE_SECONDS.labels("index_version").observe(seconds)
                    log.info(
                        "index version counted",
                        extra={"collection": name, "points": len(ids), "ms": seconds * 1000},
                    )
        return index_version(self.recipe, digest)

    async def index_versions(self) -> dict[str, str]:
        """Every collection's version, counting those not known yet (start-up)."""
        return {name: await self.index_version(name) for name in await self._document_collections()}

    async def drop_collection(self, name: str) -> None:
        async with self._write_locks[name]:
            await self.store.drop_collection(name)
            self._digests.forget(name)
        self._write_locks.pop(name, None)
        self.drift.forget(name)
        log.info("collection dropped", extra={"collection": name})

    # -- documents -----------------------------------------------------------------------

    async def ingest(self, name: str, documents: Sequence[DocumentIn]) -> IngestResult:
        """Upsert `documents` in order: of two with one id, the later is the one kept."""
        self._check_documents(documents)
        documents = list({doc.id: doc for doc in documents}.values())
        await self._require_compatible(name)
        async with self._write_locks[name]:
            hashes = {doc.id: content_hash(doc, self.recipe) for doc in documents}
            existing = await self._existing_hashes(name, list(hashes))
            changed = [doc for doc in documents if existing.get(doc.id) != hashes[doc.id]]
            drafts = [
                draft
                for doc in changed
                for draft in chunk_document(doc, hashes[doc.id], self.recipe)
            ]
            touched = FilterSpec(must=(Condition("doc_id", any=tuple(d.id for d in changed)),))
            tracked = bool(changed) and self._digests.fresh(name) is not None
            try:
                before = await self.store.point_ids(name, touched) if tracked else []
                await self._write(name, drafts)
                deleted = 0
                for doc in changed:
                    if doc.id in existing:
                        deleted += await self._delete_where(
                            name,
                            FilterSpec(
                                must=(Condition("doc_id", match=doc.id),),
                                must_not=(Condition("doc_hash", match=hashes[doc.id]),),
                            ),
                        )
                if tracked:
                    self._digests.apply(name, before, await self.store.point_ids(name, touched))
            except BaseException:
                self._digests.forget(name)  # a write that stopped half-way: count afresh
                raise
        result = IngestResult(
            added=[doc.id for doc in changed if doc.id not in existing],
            updated=[doc.id for doc in changed if doc.id in existing],
            unchanged=[doc.id for doc in documents if existing.get(doc.id) == hashes[doc.id]],
            chunks_written=len(drafts),
            chunks_deleted=deleted,
        )
        for outcome in ("added", "updated", "unchanged"):
            DOCUMENTS.labels(outcome).inc(len(getattr(result, outcome)))
        CHUNKS.labels("written").inc(result.chunks_written)
        CHUNKS.labels("deleted").inc(result.chunks_deleted)
        log.info(
            "ingested",
            extra={
                "collection": name,
                "added": len(result.added),
                "updated": len(result.updated),
                "unchanged": len(result.unchanged),
                "chunks_written": result.chunks_written,
            },
        )
        return result

    def _check_documents(self, documents: Sequence[DocumentIn]) -> None:
        section = self.settings
        if len(documents) > section.max_documents_per_request:  # the schema's maxItems
            raise InvalidInputError(
                f"at most {section.max_documents_per_request} documents per request",
                field="documents",
            )
        for i, doc in enumerate(documents):
            size = len(doc.text.encode())
            if size > section.max_document_bytes:
                raise PayloadTooLargeError(
                    f"document {doc.id!r} is {size} bytes; the limit is "
                    f"{section.max_document_bytes}",
                    field=f"documents[{i}].text",
                )
            if not doc.text.strip():
                raise InvalidInputError("text must not be empty", field=f"documents[{i}].text")

    async def _require_compatible(self, name: str) -> None:
        info = await self.store.info(name)
        if info.vector_size != self.dense.dimension:
            raise ConflictError(
                f"collection {name!r} holds {info.vector_size}-dimensional vectors; the "
                f"embedding model {self.dense.name} makes {self.dense.dimension}",
                field="collection",
            )

    async def _existing_hashes(self, name: str, doc_ids: list[str]) -> dict[str, str]:
        where = FilterSpec(must=(FIRST_CHUNK, Condition("doc_id", any=tuple(doc_ids))))
        records, _ = await self.store.scroll(name, where, limit=len(doc_ids) + 1, offset=None)
        return {r.payload["doc_id"]: r.payload["doc_hash"] for r in records}

    async def _write(self, name: str, drafts: list[ChunkDraft]) -> None:
        for start in range(0, len(drafts), UPSERT_BATCH):
            batch = drafts[start : start + UPSERT_BATCH]
            texts = [embedding_text(d.payload["title"], d.chunk.text) for d in batch]
            began = time.perf_counter()
            dense = await asyncio.to_thread(self.dense.embed, texts)
            sparse = await asyncio.to_thread(self.sparse.embed_documents, texts)
            STAGE_SECONDS.labels("ingest_embed").observe(time.perf_counter() - began)
            points = [
                ChunkPoint(d.id, vector, sparse_vector, d.payload)
                for d, vector, sparse_vector in zip(batch, dense, sparse, strict=True)
            ]
            began = time.perf_counter()
            await self.store.upsert(name, points)
            STAGE_SECONDS.labels("ingest_write").observe(time.perf_counter() - began)

    async def _delete_where(self, name: str, where: FilterSpec) -> int:
        count = await self.store.count(name, where)
        if count:
            await self.store.delete(name, where)
        return count

    async def list_documents(self, name: str, limit: int, offset: str | None) -> DocumentPage:
        records, next_offset = await self.store.scroll(
            name, FilterSpec(must=(FIRST_CHUNK,)), limit=limit, offset=offset
        )
        documents = [
            DocumentSummary(
                id=r.payload["doc_id"],
                content_hash=r.payload["doc_hash"],
                title=r.payload.get("title", ""),
                source=r.payload.get("source", ""),
                chunks=r.payload.get("chunk_count", 0),
            )
            for r in records
        ]
        return DocumentPage(documents, next_offset)

    async def delete_document(self, name: str, doc_id: str) -> DeleteResult:
        where = FilterSpec(must=(Condition("doc_id", match=doc_id),))
        async with self._write_locks[name]:
            removed = await self.store.point_ids(name, where)
            if removed:
                try:
                    await self.store.delete(name, where)
                except BaseException:
                    self._digests.forget(name)
                    raise
                self._digests.apply(name, removed, ())
        deleted = len(removed)
        if not deleted:
            raise NotFoundError(f"no document {doc_id!r} in {name!r}", field="id")
        DOCUMENTS.labels("deleted").inc()
        CHUNKS.labels("deleted").inc(deleted)
        return DeleteResult(doc_id, deleted)

    # -- search --------------------------------------------------------------------------

    async def search(self, name: str, request: SearchRequest) -> SearchResponse:
        began = time.perf_counter()
        rerank_top = self._check_search(request)
        where = parse_filter(request.filter)
        if not await self.store.exists(name):
            raise NotFoundError(f"no collection {name!r}", field="collection")
        version = await self.index_version(name)
        timings: dict[str, float] = {}

        stage = time.perf_counter()
        dense = None
        if request.mode != "sparse":
            dense = await self.queries.embed(request.query)
        sparse = self.sparse.embed_query(request.query) if request.mode != "dense" else None
        timings["embed"] = _elapsed_ms(stage, "embed")

        stage = time.perf_counter()
        candidates = max(request.k, rerank_top) if request.rerank else request.k
        search = self.settings.search
        fused = request.mode == "hybrid"
        result = await self.store.query(
            name,
            RoadsQuery(
                limit=max(search.prefetch_limit, candidates) if fused else candidates,
                dense=dense,
                sparse=sparse,
                filter=where,
            ),
        )
        ranked = self._rank(result, request.weights)[:candidates]
        payloads = await self.store.payloads(name, [point.id for point, _ in ranked])
        ranked = [
            (Scored(point.id, point.score, payloads[point.id]), score)
            for point, score in ranked
            if point.id in payloads  # deleted between the two calls
        ]
        timings["search"] = _elapsed_ms(stage, "search")
        self.drift.observe(
            name,
            request.mode,
            request.query,
            dense,
            max((p.score for p in result.dense), default=None) if result.dense else None,
            [score for _, score in ranked[: request.k]],
        )
        dense_scores = {p.id: p.score for p in result.dense or []}
        sparse_scores = {p.id: p.score for p in result.sparse or []}
        hits = [_hit(point, score, dense_scores, sparse_scores, fused) for point, score in ranked]
        if request.rerank and hits:
            stage = time.perf_counter()
            hits = await self._rerank(request.query, hits, [point for point, _ in ranked])
            timings["rerank"] = _elapsed_ms(stage, "rerank")
        SEARCHES.labels(request.mode, str(request.rerank).lower()).inc()
        timings["total"] = (time.perf_counter() - began) * 1000
        return SearchResponse(
            collection=name,
            index_version=version,
            mode=request.mode,
            reranked=request.rerank,
            hits=hits[: request.k],
            timings_ms=timings,
        )

    async def drift_report(self, name: str, mode: SearchMode) -> CollectionDrift:
        if not await self.store.exists(name):
            raise NotFoundError(f"no collection {name!r}", field="collection")
        return self.drift.report(name, mode)

    async def reset_drift(self, name: str) -> list[str]:
        if not await self.store.exists(name):
            raise NotFoundError(f"no collection {name!r}", field="collection")
        return self.drift.reset(name)

    def _rank(
        self, result: QueryResult, weights: FusionWeights | None
    ) -> list[tuple[Scored, float]]:
        """One road: its own order and scores. Both: weighted reciprocal rank fusion."""
        if result.dense is None or result.sparse is None:
            single = result.dense if result.dense is not None else result.sparse or []
            return [(point, point.score) for point in single]
        points = {p.id: p for p in result.sparse} | {p.id: p for p in result.dense}
        search = self.settings.search
        dense_weight, sparse_weight = (
            (weights.dense, weights.sparse)
            if weights is not None
            else (search.dense_weight, search.sparse_weight)
        )
        fused = reciprocal_rank_fusion(
            [[p.id for p in result.dense], [p.id for p in result.sparse]],
            (dense_weight, sparse_weight),
            search.rrf_k,
        )
        return [(points[point_id], score) for point_id, score in fused]

    def _check_search(self, request: SearchRequest) -> int:
        search = self.settings.search
        if not request.query.strip():
            raise InvalidInputError("query must not be empty", field="query")
        if len(request.query) > search.max_query_chars:
            raise InvalidInputError(
                f"query is longer than {search.max_query_chars} characters", field="query"
            )
        if not 1 <= request.k <= search.max_k:
            raise InvalidInputError(f"k must be between 1 and {search.max_k}", field="k")
        rerank_top = request.rerank_top or self.settings.rerank.top_n
        if request.rerank:
            if self.reranker is None:
                raise InvalidInputError(
                    "this retriever has no re-ranker (set retriever.rerank.model_dir)",
                    field="rerank",
                )
            if not 1 <= rerank_top <= MAX_RERANK_TOP:
                raise InvalidInputError(
                    f"rerank_top must be between 1 and {MAX_RERANK_TOP}", field="rerank_top"
                )
        return max(rerank_top, request.k)

    async def _rerank(
        self, query: str, hits: list[SearchHit], points: list[Scored]
    ) -> list[SearchHit]:
        assert self.reranker is not None
        candidates = [
            RerankCandidate(embedding_text(hit.title, hit.text), point.payload["chunk_hash"])
            for hit, point in zip(hits, points, strict=True)
        ]
        scores = await asyncio.to_thread(self.reranker.score, query, candidates)
        for hit, score in zip(hits, scores, strict=True):
            hit.scores.rerank = score
            hit.score = score
        return sorted(hits, key=lambda h: h.score, reverse=True)


def _elapsed_ms(since: float, stage: str) -> float:
    seconds = time.perf_counter() - since
    STAGE_SECONDS.labels(stage).observe(seconds)
    return seconds * 1000


def _hit(
    point: Scored, score: float, dense: dict[str, float], sparse: dict[str, float], fused: bool
) -> SearchHit:
    payload: dict[str, Any] = point.payload
    return SearchHit(
        chunk_id=point.id,
        doc_id=payload["doc_id"],
        chunk_index=payload["chunk_index"],
        start=payload["start"],
        end=payload["end"],
        text=payload["text"],
        title=payload.get("title", ""),
        source=payload.get("source", ""),
        metadata=payload.get("metadata", {}),
        scores=SearchScores(
            dense=dense.get(point.id),
            sparse=sparse.get(point.id),
            fused=score if fused else None,
        ),
        score=score,
    )
