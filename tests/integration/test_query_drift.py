"""Query and retrieval drift in an in-process `RetrieverService` over CISI documents.

A synthetic shift (PubMedQA's clinical questions sent to library-science abstracts) must move
every query and retrieval signal past its threshold within N searches; a stable stream (titles
of CISI documents that are not indexed) must stay below every threshold over 10 x N searches.

Queries are embedded in one batch up front by the same model (`BatchedEmbedder`), so the
hundreds of searches cost the store's time, not one model call each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.drift_streams import cisi_documents, off_topic_queries, on_topic_queries
from trivium.common.contracts.drift import QUERY_SIGNALS
from trivium.common.contracts.retriever import CollectionCreate, SearchRequest
from trivium.common.errors import NotFoundError
from trivium.retriever.config import RetrieverSection
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.edge import EdgeStore

INDEXED = 120
BASELINE = 200
WINDOW = 100
N = 50
"""Off-topic searches within which every signal must pass its threshold."""


class BatchedEmbedder(DenseEmbedder):
    """The real model; the queries known in advance are embedded once, in one batch."""

    def __init__(self, section: RetrieverSection, queries: Sequence[str]) -> None:
        super().__init__(section.embedding)
        self.known = dict(zip(queries, super().embed(list(queries)), strict=True))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) == 1 and texts[0] in self.known:
            return [self.known[texts[0]]]
        return super().embed(texts)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RetrieverService]:
    section = RetrieverSection.model_validate(
        {
            "chunking": {"max_chars": 4000, "overlap_chars": 0},
            "drift": {"baseline_size": BASELINE, "window_size": WINDOW, "min_window": WINDOW},
        }
    )
    queries = on_topic_queries(INDEXED)[: BASELINE + 10 * N] + off_topic_queries()[:N]
    store = EdgeStore(Path(tmp_path_factory.mktemp("drift")), optimize_after_s=3600)
    service = RetrieverService(
        section, store, BatchedEmbedder(section, queries), SparseEmbedder(section.bm25), None
    )
    await store.start()
    await service.create_collection(CollectionCreate("cisi"))
    await service.ingest("cisi", cisi_documents(INDEXED))
    yield service
    await store.close()


async def _search(service: RetrieverService, query: str) -> None:
    await service.search("cisi", SearchRequest(query=query, k=5, mode="hybrid"))


def _drifting(service: RetrieverService) -> set[str]:
    report = service.drift.report("cisi", "hybrid")
    return {signal.name for signal in report.signals if signal.drifting}


@pytest.mark.asyncio(loop_scope="module")
async def test_stable_stream_stays_below_and_a_shift_passes_every_threshold(
    service: RetrieverService,
) -> None:
    on_topic = on_topic_queries(INDEXED)
    for query in on_topic[:BASELINE]:
        await _search(service, query)
    report = service.drift.report("cisi", "hybrid")
    assert (report.baseline, report.baseline_n, report.window_n) == ("frozen", BASELINE, 0)
    assert all(signal.value is None for signal in report.signals)  # nothing judged yet

    checks = alarms = 0
    for query in on_topic[BASELINE : BASELINE + 10 * N]:
        await _search(service, query)
        if service.drift.report("cisi", "hybrid").window_n >= WINDOW:
            checks += 1
            alarms += bool(_drifting(service))
    print(f"stable stream: {alarms} false alarms in {checks} full-window checks")
    assert checks == 10 * N - WINDOW + 1
    assert alarms == 0

    first: dict[str, int] = {}
    for i, query in enumerate(off_topic_queries()[:N], start=1):
        await _search(service, query)
        for name in _drifting(service):
            first.setdefault(name, i)
    print(f"off-topic searches until each signal passed its threshold: {first}")
    assert set(first) == set(QUERY_SIGNALS)
    report = service.drift.report("cisi", "hybrid")
    assert all(signal.drifting for signal in report.signals)
    assert report.clusters, "the off-topic queries are the window's novel clusters"
    novel = {example for cluster in report.clusters for example in cluster.examples}
    assert novel <= set(off_topic_queries()[:N])
    assert sum(cluster.size for cluster in report.clusters) <= N


@pytest.mark.asyncio(loop_scope="module")
async def test_reset_collects_a_new_baseline_and_unknown_collections_are_404(
    service: RetrieverService,
) -> None:
    assert await service.reset_drift("cisi") == ["cisi/hybrid"]
    report = await service.drift_report("cisi", "hybrid")
    assert (report.baseline, report.baseline_n, report.window_n) == ("collecting", 0, 0)
    await _search(service, off_topic_queries()[0])
    assert (await service.drift_report("cisi", "hybrid")).baseline_n == 1
    assert (await service.drift_report("cisi", "dense")).baseline_n == 0
    with pytest.raises(NotFoundError) as caught:
        await service.drift_report("nope", "hybrid")
    assert caught.value.field == "collection"
    with pytest.raises(NotFoundError):
        await service.reset_drift("nope")
