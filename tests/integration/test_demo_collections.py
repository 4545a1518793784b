"""The shipped examples' collections in a real retriever (Qdrant's engine in process, the
real embedding model): the few-shot triage examples and a slice of the PubMedQA abstracts."""

from __future__ import annotations

from pathlib import Path

from trivium.cli.demo_data import (
    PUBMEDQA_COLLECTION,
    TRIAGE_EXAMPLES_COLLECTION,
    shipped_documents,
    shipped_rows,
    triage_example_documents,
)
from trivium.common.contracts.retriever import CollectionCreate, SearchRequest
from trivium.model.data.triage import triage_split
from trivium.retriever.config import RetrieverSection
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.edge import EdgeStore


async def test_both_example_collections_ingest_and_answer(
    tmp_path: Path, dense_embedder: DenseEmbedder
) -> None:
    section = RetrieverSection()
    store = EdgeStore(tmp_path / "edge", optimize_after_s=0.05)
    await store.start()
    try:
        service = RetrieverService(
            section, store, dense_embedder, SparseEmbedder(section.bm25), None
        )
        examples = triage_example_documents()
        await service.create_collection(CollectionCreate(TRIAGE_EXAMPLES_COLLECTION))
        await service.ingest(TRIAGE_EXAMPLES_COLLECTION, examples)
        assert (await service.stats(TRIAGE_EXAMPLES_COLLECTION)).documents == 290
        train_ids = {doc.id for doc in examples}
        ticket = triage_split().held_out[0]
        found = await service.search(
            TRIAGE_EXAMPLES_COLLECTION, SearchRequest(query=ticket.text, k=3)
        )
        assert len(found.hits) == 3
        assert {hit.doc_id for hit in found.hits} <= train_ids  # never a held-out ticket
        assert all("\nLabel: " in hit.text for hit in found.hits)

        rows = shipped_rows("pubmedqa", "pubmedqa-eval.jsonl")[:8]
        wanted = {doc_id for row in rows for doc_id in row.expected.doc_ids or []}
        documents = [d for d in shipped_documents("pubmedqa", "documents.jsonl") if d.id in wanted]
        await service.create_collection(CollectionCreate(PUBMEDQA_COLLECTION))
        await service.ingest(PUBMEDQA_COLLECTION, documents)
        assert (await service.stats(PUBMEDQA_COLLECTION)).documents == len(wanted)
        first_hits = []
        for row in rows:
            assert row.input is not None
            query = SearchRequest(query=row.input["question"], k=3, mode="dense")
            hits = (await service.search(PUBMEDQA_COLLECTION, query)).hits
            first_hits.append(hits[0].doc_id in (row.expected.doc_ids or []))
        # Eight abstracts on eight topics: the question's own abstract comes first nearly always.
        assert sum(first_hits) >= 7
    finally:
        await store.close()
