"""The retriever's semantic cache: scope and index version as exact filters, meaning for the
text, TTL and size bound, and the HTTP API's refusals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from qdrant_client import AsyncQdrantClient

from trivium.common.contracts.retriever import (
    CacheLookup,
    CacheStore,
    CollectionCreate,
    DocumentIn,
    IndexRef,
)
from trivium.retriever.api.app import create_app
from trivium.retriever.config import RetrieverSection, RetrieverSettings
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.semantic_cache import SemanticCache
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.base import VectorStore
from trivium.retriever.store.edge import EdgeStore
from trivium.retriever.store.qdrant import QdrantStore

PAIRS = Path(__file__).resolve().parents[1] / "data" / "semantic_cache_paraphrases.jsonl"
ROWS = {row["id"]: row for row in map(json.loads, PAIRS.read_text().splitlines())}
DEFAULT_THRESHOLD = 0.94
SCOPE = hashlib.sha256(b"scope-a").hexdigest()
OTHER_SCOPE = hashlib.sha256(b"scope-b").hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["edge", "qdrant-local"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    backend: VectorStore
    if request.param == "edge":
        backend = EdgeStore(tmp_path / "edge", optimize_after_s=0.05)
    else:
        backend = QdrantStore(AsyncQdrantClient(location=":memory:"), local=True)
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture
def service(store: VectorStore, dense_embedder: DenseEmbedder) -> RetrieverService:
    section = RetrieverSection()
    return RetrieverService(section, store, dense_embedder, SparseEmbedder(section.bm25), None)


def put(text: str, origin: str, scope: str = SCOPE, **kw: Any) -> CacheStore:
    fields: dict[str, Any] = {"ttl_s": 60, "max_entries": 100, **kw}
    return CacheStore(scope, text, json.dumps({"answer": origin}), origin, **fields)


async def test_a_paraphrase_hits_and_a_near_miss_does_not(service: RetrieverService) -> None:
    for row_id in ("triage-5", "pubmedqa-2503176"):
        row = ROWS[row_id]
        await service.cache.store("faq", put(row["original"], row_id))
    row = ROWS["triage-5"]
    found = await service.cache.lookup(
        "faq", CacheLookup(SCOPE, row["paraphrase"], DEFAULT_THRESHOLD)
    )
    assert found.hit is not None
    assert found.hit.origin_id == "triage-5"
    assert found.hit.text == row["original"]
    assert DEFAULT_THRESHOLD <= found.hit.similarity <= 1
    assert json.loads(found.hit.answer) == {"answer": "triage-5"}
    assert {"embed", "search", "total"} <= set(found.timings_ms)
    near = await service.cache.lookup(
        "faq", CacheLookup(SCOPE, row["near_miss"], DEFAULT_THRESHOLD)
    )
    assert near.hit is None


async def test_the_scope_is_an_exact_filter(service: RetrieverService) -> None:
    await service.cache.store("faq", put("When do refunds arrive?", "a"))
    same_text = CacheLookup(OTHER_SCOPE, "When do refunds arrive?", 0.5)
    assert (await service.cache.lookup("faq", same_text)).hit is None
    assert (await service.cache.lookup("other", same_text)).hit is None  # no such namespace
    hit = (
        await service.cache.lookup("faq", CacheLookup(SCOPE, "When do refunds arrive?", 0.99))
    ).hit
    assert hit is not None
    assert hit.similarity > 0.99


async def test_a_reingest_invalidates_rag_entries(service: RetrieverService) -> None:
    await service.create_collection(CollectionCreate("kb"))
    await service.ingest("kb", [DocumentIn(id="d1", text="Refunds reach the card in five days.")])
    version = await service.index_version("kb")
    stored = await service.cache.store(
        "faq", put("When do refunds arrive?", "a", built_on=IndexRef("kb", version))
    )
    assert stored.stored
    assert stored.entries == 1
    lookup = CacheLookup(SCOPE, "When will my refund arrive?", 0.8, collection="kb")
    assert (await service.cache.lookup("faq", lookup)).hit is not None
    await service.ingest("kb", [DocumentIn(id="d2", text="Refunds now take ten days.")])
    assert (await service.cache.lookup("faq", lookup)).hit is None
    stale = await service.cache.store(
        "faq", put("When do refunds arrive?", "b", built_on=IndexRef("kb", version))
    )
    assert not stale.stored  # built on the old index: never stored
    assert [c.name for c in await service.collections()] == ["kb"]  # caches stay out


async def test_entries_expire_after_their_ttl(
    store: VectorStore, dense_embedder: DenseEmbedder
) -> None:
    clock = Clock()
    cache = SemanticCache(store, dense_embedder, _no_version, 2000, clock=clock)
    await cache.store("faq", put("When do refunds arrive?", "a", ttl_s=30))
    lookup = CacheLookup(SCOPE, "When do refunds arrive?", 0.9)
    clock.now += 29
    assert (await cache.lookup("faq", lookup)).hit is not None
    clock.now += 2
    assert (await cache.lookup("faq", lookup)).hit is None
    stats = await cache.stats("faq")
    assert (stats.entries, stats.live) == (1, 0)


async def test_the_size_bound_evicts_expired_then_oldest(
    store: VectorStore, dense_embedder: DenseEmbedder
) -> None:
    clock = Clock()
    cache = SemanticCache(store, dense_embedder, _no_version, 2000, clock=clock)
    texts = [ROWS[f"cisi-{n}"]["original"] for n in (3, 6, 8, 10, 12, 14)]
    await cache.store("lib", put(texts[0], "short-lived", ttl_s=5, max_entries=4))
    clock.now += 10
    for i, text in enumerate(texts[1:]):
        clock.now += 1
        result = await cache.store("lib", put(text, f"e{i}", max_entries=4))
        assert result.entries <= 4
    # e3 is the 5th entry: the expired one goes and 4 remain. e4 is the 5th again, none has
    # expired: the oldest go, down to 90% of the bound (3), so e0 and e1.
    left = {
        hit.origin_id
        for text in texts
        if (hit := (await cache.lookup("lib", CacheLookup(SCOPE, text, 0.99))).hit)
    }
    assert left == {"e2", "e3", "e4"}
    assert (await cache.stats("lib")).entries == len(left)


async def _no_version(name: str) -> str:
    return "v"


# -- the HTTP API ------------------------------------------------------------------------------

# The retriever's handlers infer their `retriever` dependency, which Litestar 2 warns about
# when the app is built in process (the e2e tests run it as a process instead).
in_process_app = pytest.mark.filterwarnings(
    "ignore::litestar.exceptions.LitestarDeprecationWarning"
)


@pytest.fixture
async def http(
    tmp_path: Path, dense_embedder: DenseEmbedder
) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = RetrieverSettings(data_dir=tmp_path)
    section = settings.retriever
    store = EdgeStore(settings.edge_dir, 0.05)
    service = RetrieverService(section, store, dense_embedder, SparseEmbedder(section.bm25), None)
    async with AsyncTestClient(create_app(settings, service)) as client:
        yield client


@in_process_app
async def test_the_cache_api_round_trip(http: AsyncTestClient[Any]) -> None:
    body = {"scope": SCOPE, "text": "When do refunds arrive?", "answer": "{}", "origin_id": "ans_1"}
    stored = await http.post("/v1/cache/faq/store", json={**body, "ttl_s": 60, "max_entries": 10})
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"namespace": "faq", "stored": True, "entries": 1, "evicted": 0}
    lookup = {"scope": SCOPE, "text": "When will refunds arrive?", "threshold": 0.8}
    found = await http.post("/v1/cache/faq/lookup", json=lookup)
    assert found.status_code == 200
    assert found.json()["hit"]["origin_id"] == "ans_1"
    assert (await http.get("/v1/cache/faq")).json() == {"namespace": "faq", "entries": 1, "live": 1}
    assert (await http.delete("/v1/cache/faq")).status_code == 204
    assert (await http.post("/v1/cache/faq/lookup", json=lookup)).json()["hit"] is None


@in_process_app
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/cache/faq/lookup", {"scope": "xyz", "text": "q", "threshold": 0.9}, "scope"),
        ("/v1/cache/faq/lookup", {"scope": SCOPE, "text": "  ", "threshold": 0.9}, "text"),
        ("/v1/cache/faq/lookup", {"scope": SCOPE, "text": "q", "threshold": 1.5}, "threshold"),
        ("/v1/cache/faq/lookup", {"scope": SCOPE, "text": "q", "threshold": 0.9, "k": 1}, "k"),
        ("/v1/cache/faq/lookup", {"scope": SCOPE, "text": "q" * 2001, "threshold": 0.9}, "text"),
        (
            "/v1/cache/faq/store",
            {
                "scope": SCOPE,
                "text": "q",
                "answer": "{}",
                "origin_id": "a",
                "ttl_s": 0,
                "max_entries": 1,
            },
            "ttl_s",
        ),
        (
            "/v1/cache/faq/store",
            {
                "scope": SCOPE,
                "text": "q",
                "answer": "{}",
                "origin_id": "a",
                "ttl_s": 5,
                "max_entries": 0,
            },
            "max_entries",
        ),
        (
            "/v1/cache/faq/store",
            {
                "scope": SCOPE,
                "text": "q",
                "answer": "{}",
                "origin_id": "a",
                "ttl_s": 5,
                "max_entries": 1,
                "built_on": {"collection": "kb"},
            },
            "index_version",
        ),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    http: AsyncTestClient[Any], path: str, body: dict[str, Any], field: str
) -> None:
    response = await http.post(path, json=body)
    assert response.status_code == 400, response.text
    assert field in (response.json().get("field") or ""), response.json()


@in_process_app
async def test_unknown_namespaces_and_collections_are_404(http: AsyncTestClient[Any]) -> None:
    assert (await http.get("/v1/cache/nope")).status_code == 404
    assert (await http.delete("/v1/cache/nope")).json()["field"] == "namespace"
    lookup = {"scope": SCOPE, "text": "q", "threshold": 0.9, "collection": "missing"}
    missing = await http.post("/v1/cache/faq/lookup", json=lookup)
    assert missing.status_code == 404
    assert missing.json()["field"] == "collection"
    bad_name = await http.post("/v1/cache/Bad.Name/lookup", json=lookup)
    assert bad_name.status_code in (400, 404)
