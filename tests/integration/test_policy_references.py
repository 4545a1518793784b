"""`check_references`: a valid policy's templates, adapters and collections against a real
registry (both backends) and a real retriever app served over loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from tests.conftest import RegistryBackend
from trivium.common.redis_server import free_tcp_port
from trivium.gateway.clients.retriever import RetrieverClient
from trivium.gateway.policy import PolicyIssue, check_references, parse_policy
from trivium.model.adapters import ADAPTER_KIND
from trivium.registry import ReadOnlyKind, Registry
from trivium.retriever.api.app import create_app
from trivium.retriever.config import RetrieverSection, RetrieverSettings
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.search.rerank import Reranker
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.edge import EdgeStore

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

POLICY = """\
upstreams:
  local: {url: "http://127.0.0.1:8002/v1", model: base}
features:
  known:
    route: rag
    template: answer@production
    upstream: local
    retrieval: {collection: kb}
  lost:
    route: finetune+rag
    adapter: ghost-lora
    upstream: local
    retrieval: {collection: nowhere}
    variants:
      main: {weight: 1}
      tuned: {weight: 1, adapter: tuned-lora@production, template: answer@canary}
  pinned:
    route: prompt
    template: answer@9
    upstream: local
"""


@pytest.fixture
async def retriever_url(
    tmp_path: Path, dense_embedder: DenseEmbedder, tiny_cross_encoder: Path
) -> AsyncIterator[str]:
    section = RetrieverSection()
    settings = RetrieverSettings(data_dir=tmp_path, retriever=section)
    service = RetrieverService(
        section,
        EdgeStore(settings.edge_dir, optimize_after_s=0.05),
        dense_embedder,
        SparseEmbedder(section.bm25),
        Reranker(tiny_cross_encoder),
    )
    port = free_tcp_port()
    config = uvicorn.Config(
        create_app(settings, service), host="127.0.0.1", port=port, log_config=None, ws="none"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not serving.done(), "the retriever app did not start"
        assert time.monotonic() < deadline, "the retriever app did not start in 30 s"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


async def test_every_missing_reference_is_an_issue_at_its_path(
    registry_backend: RegistryBackend, retriever_url: str, tmp_path: Path
) -> None:
    templates = await registry_backend.registry(cache=False)
    published = await templates.publish("answer", "Answer {{ q }}", {"variables": ["q"]})
    await templates.promote("answer", "production", published.artifact.version)
    adapter_dir = tmp_path / "tuned-lora"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text(json.dumps({"r": 4}))
    client = registry_backend.client
    writer = Registry(client, ADAPTER_KIND, registry_backend.settings, cache=False)
    metadata = {"base_model": "tiny", "weights_sha256": "0" * 64, "rank": 4}
    tuned = await writer.publish("tuned-lora", str(adapter_dir), metadata)
    await writer.promote("tuned-lora", "production", tuned.artifact.version)
    adapters = Registry(client, ReadOnlyKind("adapter"), registry_backend.settings, cache=False)
    policy = parse_policy(POLICY, "test")

    async with RetrieverClient(retriever_url) as retriever:
        await retriever.create_collection("kb")
        issues = await check_references(
            policy, templates=templates, adapters=adapters, collections=retriever
        )

    assert issues == [
        PolicyIssue("features.lost.variants.tuned.template", "answer has no label 'canary'"),
        PolicyIssue("features.pinned.template", "answer has no version 9"),
        PolicyIssue("features.lost.adapter", "no adapter named 'ghost-lora'"),
        PolicyIssue(
            "features.lost.retrieval.collection", "no collection 'nowhere' in the retriever"
        ),
    ]
    assert await check_references(policy) == []
