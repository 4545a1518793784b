"""The semantic cache: answers keyed by the meaning of one text within an exact scope.

Each namespace is a collection of the vector store named `_cache.<namespace>` (a name no
document collection can take, so the two never collide and listings leave caches out). A
point is one stored answer: the dense embedding of its text, and a payload with the exact
`scope` hash, the answer, the originating request's id, its store and expiry times and, for a
RAG road, the index version it was built on. A lookup is one filtered nearest-neighbour query:
the scope, the expiry and the current index version are exact filters; only the text is
compared by meaning. The size bound is enforced after each store: expired entries go first,
then the oldest, down to 90% of the bound (so a full namespace is not scanned on every store).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from trivium.common.contracts.retriever import (
    CacheHit,
    CacheLookup,
    CacheLookupResult,
    CacheNamespaceStats,
    CacheStore,
    CacheStoreResult,
)
from trivium.common.errors import InvalidInputError, NotFoundError
from trivium.retriever.api.metrics import CACHE_REQUESTS, STAGE_SECONDS
from trivium.retriever.search.embedding import DenseEmbedder
from trivium.retriever.search.filters import Condition, FilterSpec
from trivium.retriever.store.base import (
    ChunkPoint,
    CollectionSpec,
    IndexType,
    RoadsQuery,
    SparseVec,
    VectorStore,
)

__all__ = ("CACHE_PREFIX", "SemanticCache", "is_cache_collection")

log = logging.getLogger(__name__)
CACHE_PREFIX = "_cache."
EVICT_TO = 0.9
"""Eviction leaves this share of the bound, so the next stores need no scan."""
SCAN_PAGE = 10_000
CACHE_INDEXES: dict[str, IndexType] = {
    "scope": "keyword",
    "entry": "keyword",
    "index_version": "keyword",
    "expires_at": "float",
}
_NO_SPARSE = SparseVec([], [])


def is_cache_collection(name: str) -> bool:
    return name.startswith(CACHE_PREFIX)


class SemanticCache:
    def __init__(
        self,
        store: VectorStore,
        dense: DenseEmbedder,
        index_version: Callable[[str], Awaitable[str]],
        max_text_chars: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._dense = dense
        self._index_version = index_version
        self._max_text_chars = max_text_chars
        self._clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def lookup(self, namespace: str, request: CacheLookup) -> CacheLookupResult:
        began = time.perf_counter()
        self._check_text(request.text)
        name = CACHE_PREFIX + namespace
        where = [Condition("scope", match=request.scope)]
        if request.collection is not None:
            version = await self._current_version(request.collection)
            where.append(Condition("index_version", match=version))
        timings: dict[str, float] = {}
        if not await self._store.exists(name):
            CACHE_REQUESTS.labels("lookup", "miss").inc()
            return CacheLookupResult(namespace, None, {"total": _ms(began)})
        vector = await self._embed(request.text, timings)
        stage = time.perf_counter()
        where.append(Condition("expires_at", range={"gt": self._clock()}))
        found = await self._store.query(
            name, RoadsQuery(limit=1, dense=vector, filter=FilterSpec(must=tuple(where)))
        )
        best = found.dense[0] if found.dense else None
        hit: CacheHit | None = None
        if best is not None and best.score >= request.threshold:
            payload = (await self._store.payloads(name, [best.id])).get(best.id)
            if payload is not None:
                hit = CacheHit(
                    similarity=min(1.0, best.score),
                    answer=payload["answer"],
                    origin_id=payload["origin_id"],
                    text=payload["text"],
                    stored_at=payload["stored_at"],
                )
        timings["search"] = _ms(stage)
        STAGE_SECONDS.labels("cache_lookup").observe(time.perf_counter() - began)
        CACHE_REQUESTS.labels("lookup", "miss" if hit is None else "hit").inc()
        timings["total"] = _ms(began)
        return CacheLookupResult(namespace, hit, timings)

    async def store(self, namespace: str, request: CacheStore) -> CacheStoreResult:
        self._check_text(request.text)
        name = CACHE_PREFIX + namespace
        built_on = request.built_on
        if built_on is not None:
            current = await self._current_version(built_on.collection)
            if current != built_on.index_version:
                CACHE_REQUESTS.labels("store", "stale").inc()
                return CacheStoreResult(namespace, False, await self._count(name), 0)
        vector = await self._embed(request.text, {})
        now = self._clock()
        entry = str(uuid.uuid4())
        payload = {
            "entry": entry,
            "scope": request.scope,
            "text": request.text,
            "answer": request.answer,
            "origin_id": request.origin_id,
            "stored_at": now,
            "expires_at": now + request.ttl_s,
            "index_version": built_on.index_version if built_on is not None else "",
        }
        async with self._locks[namespace]:
            if not await self._store.exists(name):
                spec = CollectionSpec(
                    vector_size=self._dense.dimension, payload_indexes=dict(CACHE_INDEXES)
                )
                await self._store.create_collection(name, spec)
                log.info("cache namespace created", extra={"namespace": namespace})
            await self._store.upsert(name, [ChunkPoint(entry, vector, _NO_SPARSE, payload)])
            evicted = await self._bound(name, request.max_entries, now)
            entries = await self._count(name)
        CACHE_REQUESTS.labels("store", "stored").inc()
        return CacheStoreResult(namespace, True, entries, evicted)

    async def stats(self, namespace: str) -> CacheNamespaceStats:
        name = self._existing(namespace)
        if not await self._store.exists(name):
            raise NotFoundError(f"no cache namespace {namespace!r}", field="namespace")
        live = FilterSpec(must=(Condition("expires_at", range={"gt": self._clock()}),))
        return CacheNamespaceStats(
            namespace, await self._count(name), await self._store.count(name, live)
        )

    async def drop(self, namespace: str) -> None:
        name = self._existing(namespace)
        async with self._locks[namespace]:
            if not await self._store.exists(name):
                raise NotFoundError(f"no cache namespace {namespace!r}", field="namespace")
            await self._store.drop_collection(name)
        self._locks.pop(namespace, None)
        log.info("cache namespace dropped", extra={"namespace": namespace})

    # -- parts ---------------------------------------------------------------------------

    @staticmethod
    def _existing(namespace: str) -> str:
        return CACHE_PREFIX + namespace

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise InvalidInputError("text must not be empty", field="text")
        if len(text) > self._max_text_chars:
            raise InvalidInputError(
                f"text is longer than {self._max_text_chars} characters", field="text"
            )

    async def _current_version(self, collection: str) -> str:
        if not await self._store.exists(collection):
            raise NotFoundError(f"no collection {collection!r}", field="collection")
        return await self._index_version(collection)

    async def _embed(self, text: str, timings: dict[str, float]) -> list[float]:
        stage = time.perf_counter()
        vector = (await asyncio.to_thread(self._dense.embed, [text]))[0]
        timings["embed"] = _ms(stage)
        return vector

    async def _count(self, name: str) -> int:
        if not await self._store.exists(name):
            return 0
        return await self._store.count(name, FilterSpec())

    async def _bound(self, name: str, max_entries: int, now: float) -> int:
        """Evict past the bound: the expired entries, then the oldest, to 90% of it."""
        count = await self._count(name)
        if count <= max_entries:
            return 0
        expired = FilterSpec(must=(Condition("expires_at", range={"lte": now}),))
        gone = await self._store.count(name, expired)
        if gone:
            await self._store.delete(name, expired)
            CACHE_REQUESTS.labels("evict", "expired").inc(gone)
            count -= gone
        if count <= max_entries:
            return gone
        keep = max(1, int(max_entries * EVICT_TO))
        entries: list[tuple[float, str]] = []
        offset: str | None = None
        while True:
            page, offset = await self._store.scroll(name, FilterSpec(), SCAN_PAGE, offset)
            entries.extend((p.payload["stored_at"], p.payload["entry"]) for p in page)
            if offset is None:
                break
        entries.sort()
        oldest = tuple(entry for _, entry in entries[: max(0, len(entries) - keep)])
        if oldest:
            await self._store.delete(name, FilterSpec(must=(Condition("entry", any=oldest),)))
            CACHE_REQUESTS.labels("evict", "oldest").inc(len(oldest))
        return gone + len(oldest)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000
