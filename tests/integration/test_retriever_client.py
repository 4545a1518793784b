"""The one retriever client against the real retriever app, served over loopback by uvicorn.

The gateway's search body is exactly a `SearchRequest` (decoded from what the server
received), search failures carry bounded reasons, a hung or dead retriever opens the
searches' circuit and a search spends only its budget of the feature's deadline, and the
CLI's admin calls map the retriever's answers onto the wire structs and its problems onto
`trivium.common.errors`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.tcp_faults import FaultProxy
from trivium.common.contracts.retriever import DocumentIn, FusionWeights, SearchRequest
from trivium.common.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    TriviumError,
    UnavailableError,
)
from trivium.common.redis_server import free_tcp_port
from trivium.gateway.clients.breaker import CircuitBreaker
from trivium.gateway.clients.retriever import RetrievalError, RetrieverClient
from trivium.gateway.clients.upstream import UpstreamClient
from trivium.gateway.config import RetrieverClientSection, UpstreamClientSection
from trivium.gateway.policy.model import FusionWeights as PolicyWeights
from trivium.gateway.policy.model import Retrieval, Upstream
from trivium.retriever.api.app import create_app
from trivium.retriever.config import RetrieverSection, RetrieverSettings
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.search.rerank import Reranker
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.edge import EdgeStore

# The retriever's handlers still use Litestar 2's inferred dependencies and bare `data`;
# `trivium retriever serve` only logs these deprecations, and so does this in-process app.
pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

TOKEN = "s3cret-admin-token"
DOCS = [
    DocumentIn(id="refunds", title="Refunds", text="Refunds reach the card in five days."),
    DocumentIn(
        id="guide/reset.md", title="Password reset", text="Reset the password from the login page."
    ),
    DocumentIn(id="quotas", text="Quotas limit the tokens a tenant may spend per day."),
]


@dataclass
class SearchBodies:
    """The retriever app, keeping every search body it receives exactly as it arrived."""

    app: ASGIApp
    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].endswith("/search"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self.bodies.append(b"".join(chunks))
            return message

        await self.app(scope, recording, send)


@dataclass
class Served:
    url: str
    received: SearchBodies


@pytest.fixture
async def retriever(
    tmp_path: Path, dense_embedder: DenseEmbedder, tiny_cross_encoder: Path
) -> AsyncIterator[Served]:
    section = RetrieverSection(admin_tokens={"ci": SecretStr(TOKEN)}, max_document_bytes=2000)
    settings = RetrieverSettings(data_dir=tmp_path, retriever=section)
    service = RetrieverService(
        section,
        EdgeStore(settings.edge_dir, optimize_after_s=0.05),
        dense_embedder,
        SparseEmbedder(section.bm25),
        Reranker(tiny_cross_encoder),
    )
    received = SearchBodies(create_app(settings, service))
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(
            received, host="127.0.0.1", port=port, log_config=None, access_log=False, ws="none"
        )
    )
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not serving.done(), "the retriever app did not start"
        assert time.monotonic() < deadline, "the retriever app did not start in 30 s"
        await asyncio.sleep(0.01)
    yield Served(f"http://127.0.0.1:{port}", received)
    server.should_exit = True
    await serving


@pytest.fixture
async def client(retriever: Served) -> AsyncIterator[RetrieverClient]:
    async with RetrieverClient(retriever.url, token=TOKEN) as client:
        yield client


async def _kb(client: RetrieverClient) -> None:
    await client.create_collection("kb")
    await client.ingest("kb", DOCS)


@pytest.mark.parametrize(
    ("retrieval", "expected"),
    [
        (
            Retrieval(collection="kb"),
            SearchRequest(query="forgot my password", k=5, mode="hybrid", rerank=False),
        ),
        (
            Retrieval(
                collection="kb",
                k=2,
                mode="dense",
                rerank=True,
                rerank_top=1,
                weights=PolicyWeights(dense=2.0, sparse=0.5),
                max_passage_chars=40,
            ),
            SearchRequest(
                query="forgot my password",
                k=2,
                mode="dense",
                rerank=True,
                rerank_top=2,  # never fewer candidates than hits
                weights=FusionWeights(dense=2.0, sparse=0.5),
            ),
        ),
    ],
)
async def test_the_gateway_sends_exactly_a_search_request(
    retriever: Served, client: RetrieverClient, retrieval: Retrieval, expected: SearchRequest
) -> None:
    await _kb(client)
    found = await client.search(retrieval, "forgot my password", deadline=time.monotonic() + 30)

    [body] = retriever.received.bodies
    assert msgspec.json.decode(body, type=SearchRequest) == expected
    assert found.collection == "kb"
    assert (found.mode, found.reranked) == (expected.mode, expected.rerank)
    assert len(found.hits) == min(expected.k, len(DOCS))
    assert {hit.doc_id for hit in found.hits} <= {doc.id for doc in DOCS}
    assert all((hit.scores.rerank is not None) == expected.rerank for hit in found.hits)
    stats = await client.collection("kb")
    assert stats is not None
    assert found.index_version == stats.index_version


async def test_search_failures_carry_bounded_reasons(
    retriever: Served, client: RetrieverClient
) -> None:
    await _kb(client)
    with pytest.raises(RetrievalError) as late:
        await client.search(Retrieval(collection="kb"), "refunds", deadline=time.monotonic())
    assert late.value.reason == "timeout"
    assert retriever.received.bodies == []  # nothing was sent

    soon = time.monotonic() + 30
    with pytest.raises(RetrievalError) as missing:
        await client.search(Retrieval(collection="nope"), "refunds", deadline=soon)
    assert missing.value.reason == "retriever_error"
    assert "404" in missing.value.message

    async with RetrieverClient(retriever.url, search_timeout_s=1e-4) as hasty:
        with pytest.raises(RetrievalError) as slow:
            await hasty.search(Retrieval(collection="kb"), "refunds", deadline=soon)
    assert slow.value.reason == "timeout"

    async with RetrieverClient(f"http://127.0.0.1:{free_tcp_port()}") as nobody:
        with pytest.raises(RetrievalError) as down:
            await nobody.search(Retrieval(collection="kb"), "refunds", deadline=soon)
    assert down.value.reason == "retriever_unavailable"


# -- staying up when the retriever hangs or dies -----------------------------------------------

KB = Retrieval(collection="kb")


@pytest.fixture
async def proxied(retriever: Served, client: RetrieverClient) -> AsyncIterator[FaultProxy]:
    """The retriever, with a collection, behind a proxy that can make it hang."""
    await _kb(client)
    async with FaultProxy(int(retriever.url.rsplit(":", 1)[1])) as proxy:
        yield proxy


def circuit_gauge() -> float | None:
    return REGISTRY.get_sample_value("trivium_retriever_client_circuit_state")


def circuit_state(client: RetrieverClient) -> str:
    return client.breaker.state


async def reason(search: Any) -> str:
    with pytest.raises(RetrievalError) as caught:
        await search
    return caught.value.reason


async def test_timeouts_open_the_circuit_then_searches_fail_at_once(
    proxied: FaultProxy,
) -> None:
    section = RetrieverClientSection(
        url=proxied.url, timeout_s=0.2, breaker_failures=3, breaker_open_s=0.3
    )
    async with RetrieverClient.from_section(section) as gateway:
        assert (await gateway.search(KB, "refunds", deadline=time.monotonic() + 5)).hits
        assert circuit_gauge() == 0
        proxied.hang()  # SIGSTOP, as far as the gateway can tell
        for _ in range(3):
            started = time.monotonic()
            assert await reason(gateway.search(KB, "refunds", deadline=started + 5)) == "timeout"
            assert 0.2 <= time.monotonic() - started < 0.35
        assert circuit_state(gateway) == "open"
        assert circuit_gauge() == 2

        started = time.monotonic()
        search = gateway.search(KB, "refunds", deadline=started + 5)
        assert await reason(search) == "circuit_open"
        assert time.monotonic() - started < 0.02

        proxied.resume()
        await asyncio.sleep(0.32)
        assert (await gateway.search(KB, "refunds", deadline=time.monotonic() + 5)).hits
        assert circuit_state(gateway) == "closed"
        assert circuit_gauge() == 0


async def test_connection_failures_open_the_circuit_and_4xx_do_not(retriever: Served) -> None:
    async with RetrieverClient(
        f"http://127.0.0.1:{free_tcp_port()}", breaker=CircuitBreaker(2, 30.0)
    ) as nobody:
        soon = time.monotonic() + 5
        reasons = [await reason(nobody.search(KB, "refunds", deadline=soon)) for _ in range(3)]
        assert reasons == ["retriever_unavailable"] * 2 + ["circuit_open"]

    async with RetrieverClient(retriever.url, breaker=CircuitBreaker(2, 30.0)) as gateway:
        missing = Retrieval(collection="nope")
        for _ in range(4):  # the retriever answered: alive
            search = gateway.search(missing, "refunds", deadline=time.monotonic() + 5)
            assert await reason(search) == "retriever_error"
        assert circuit_state(gateway) == "closed"


async def test_the_search_budget_leaves_time_for_the_fallback_road(proxied: FaultProxy) -> None:
    """A hung retriever costs `budget_share` of the time left, and the fallback road (a
    prompt-only call to the upstream) answers with the rest, before the feature's deadline."""
    section = RetrieverClientSection(url=proxied.url, timeout_s=10, budget_share=0.5)
    with OpenAIUpstream(delay_s=0.2) as model:
        fallback = UpstreamClient(
            "fallback", Upstream(url=model.url, model="m"), UpstreamClientSection()
        )
        async with RetrieverClient.from_section(section) as gateway:
            proxied.hang()
            started = time.monotonic()
            deadline = started + 1.0
            assert await reason(gateway.search(KB, "refunds", deadline=deadline)) == "timeout"
            spent = time.monotonic() - started
            assert 0.5 <= spent < 0.6
            answer = await fallback.chat(
                {"messages": [{"role": "user", "content": "refunds"}]}, deadline=deadline
            )
            assert answer.text == "echo: refunds"
            assert time.monotonic() < deadline
        await fallback.aclose()

    capped = RetrieverClientSection(url=proxied.url, timeout_s=0.2, budget_share=0.5)
    async with RetrieverClient.from_section(capped) as gateway:
        started = time.monotonic()
        search = gateway.search(KB, "refunds", deadline=started + 10)
        assert await reason(search) == "timeout"
        assert 0.2 <= time.monotonic() - started < 0.3  # never more than timeout_s


async def test_admin_calls_create_ingest_page_delete_and_drop(client: RetrieverClient) -> None:
    assert await client.collection("kb") is None
    created = await client.create_collection("kb", quantization="int8")
    assert (created.name, created.backend, created.documents, created.points) == (
        "kb",
        "edge",
        0,
        0,
    )

    first = await client.ingest("kb", DOCS)
    assert sorted(first.added) == sorted(doc.id for doc in DOCS)
    assert first.chunks_written >= len(DOCS)
    again = await client.ingest("kb", DOCS)
    assert (again.added, again.updated, again.unchanged) == ([], [], [doc.id for doc in DOCS])

    paged = [document async for document in client.documents("kb", page_size=1)]
    assert sorted(document.id for document in paged) == sorted(doc.id for doc in DOCS)
    assert all(document.chunks >= 1 for document in paged)

    deleted = await client.delete_document("kb", "guide/reset.md")  # an id with a slash
    assert deleted.id == "guide/reset.md"
    assert deleted.chunks_deleted >= 1
    stats = await client.collection("kb")
    assert stats is not None
    assert stats.documents == len(DOCS) - 1

    await client.drop_collection("kb")
    assert await client.collection("kb") is None


async def test_admin_failures_are_the_common_errors_naming_the_field(
    retriever: Served, client: RetrieverClient
) -> None:
    await client.create_collection("kb")
    with pytest.raises(ConflictError) as taken:
        await client.create_collection("kb")
    assert taken.value.field == "name"
    with pytest.raises(InvalidInputError) as bad_name:
        await client.create_collection("Bad Name!")
    assert "name" in (bad_name.value.field or bad_name.value.message)
    with pytest.raises(NotFoundError) as no_collection:
        await client.ingest("missing", DOCS[:1])
    assert no_collection.value.field == "collection"
    with pytest.raises(PayloadTooLargeError) as too_large:
        await client.ingest("kb", [DocumentIn(id="big", text="word " * 1000)])
    assert too_large.value.field == "documents[0].text"
    with pytest.raises(NotFoundError):
        await client.delete_document("kb", "no-such-document")
    with pytest.raises(NotFoundError):
        await client.drop_collection("missing")

    async with RetrieverClient(retriever.url) as anonymous:
        assert await anonymous.collection("kb") is not None  # reads need no token
        with pytest.raises(TriviumError, match="Bearer"):
            await anonymous.create_collection("other")
    async with RetrieverClient(f"http://127.0.0.1:{free_tcp_port()}") as nobody:
        with pytest.raises(UnavailableError):
            await nobody.collection("kb")
