"""PubMedQA: hybrid search against hybrid + the demo re-ranker, through the retriever service.

    .venv/bin/python load/bench_pubmedqa_rerank.py [--reranker DIR] [--rerank-top 20]

The 200 shipped evaluation questions (`pubmedqa-eval`) against the shipped collection (650
passages), in an in-process `RetrieverService` with the demo stack's settings (edge store,
all-MiniLM-L6-v2 + BM25, the `Reranker` the service loads). The re-ranker is the one
`trivium demo build-reranker` trains on the OTHER 800 questions (default: the one built under
`var/bench/rerank-data`; build it there with `trivium --data-dir var/bench/rerank-data demo
build-reranker`). A case's relevant documents are its own passages (`expected.doc_ids`).

Per arm: recall@k (the share of a case's passages among its first k distinct documents) at
the policy's k = 3 and at 10, MRR over the first 10 documents, the share with an own passage
first; the paired difference (re-rank - hybrid) with a 95% bootstrap interval; and the
re-rank stage's latency (`timings_ms.rerank`, each query once: a cold score cache). The store
is kept under `--store` and ingest is idempotent, so a second run skips the embedding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import contextlib

import torch

from trivium.cli.demo_data import PUBMEDQA_COLLECTION, shipped_documents, shipped_rows
from trivium.cli.demo_reranker import demo_reranker_dir
from trivium.common.contracts.datasets import DatasetRow
from trivium.common.contracts.retriever import CollectionCreate, SearchRequest
from trivium.common.errors import ConflictError
from trivium.retriever.config import RetrieverSection
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.search.rerank import Reranker
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.edge import EdgeStore
from trivium.trials.statistics import paired_bootstrap

ROOT = Path(__file__).resolve().parents[1]
DEPTH = 10


def recall_at(ranked: list[str], relevant: set[str], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant)


def reciprocal_rank(ranked: list[str], relevant: set[str]) -> float:
    return next((1 / n for n, doc in enumerate(ranked[:DEPTH], 1) if doc in relevant), 0.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def prepare(service: RetrieverService) -> str:
    await service.store.start()
    with contextlib.suppress(ConflictError):
        await service.create_collection(CollectionCreate(PUBMEDQA_COLLECTION))
    began = time.perf_counter()
    result = await service.ingest(
        PUBMEDQA_COLLECTION, shipped_documents("pubmedqa", "documents.jsonl")
    )
    await service.store.optimize_now(PUBMEDQA_COLLECTION)  # type: ignore[attr-defined]
    return (
        f"ingest {time.perf_counter() - began:.1f} s ({len(result.added)} added,"
        f" {len(result.unchanged)} unchanged, {result.chunks_written} chunks written)"
    )


async def run_arm(
    service: RetrieverService, rows: list[DatasetRow], rerank: bool, rerank_top: int
) -> tuple[dict[str, list[float]], list[float]]:
    scores: dict[str, list[float]] = {"recall@3": [], "recall@10": [], "MRR@10": [], "top-1": []}
    rerank_ms: list[float] = []
    for row in rows:
        relevant = set(row.expected.doc_ids or [])
        request = SearchRequest(
            query=str((row.input or {})["question"]),
            k=DEPTH,
            mode="hybrid",
            rerank=rerank,
            rerank_top=rerank_top if rerank else None,
        )
        response = await service.search(PUBMEDQA_COLLECTION, request)
        ranked = list(dict.fromkeys(hit.doc_id for hit in response.hits))
        scores["recall@3"].append(recall_at(ranked, relevant, 3))
        scores["recall@10"].append(recall_at(ranked, relevant, 10))
        scores["MRR@10"].append(reciprocal_rank(ranked, relevant))
        scores["top-1"].append(float(bool(ranked) and ranked[0] in relevant))
        if rerank:
            rerank_ms.append(response.timings_ms["rerank"])
    return scores, rerank_ms


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reranker", type=Path, default=demo_reranker_dir(ROOT / "var/bench/rerank-data")
    )
    parser.add_argument("--store", type=Path, default=ROOT / "var/bench/pubmedqa-store")
    parser.add_argument("--rerank-top", type=int, default=20, help="as the demo policy's arm")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    section = RetrieverSection()  # the demo stack's defaults
    rerank = section.rerank
    reranker = Reranker(
        args.reranker,
        batch_size=rerank.batch_size,
        max_length=rerank.max_length,
        cache_size=rerank.cache_size,
    )
    service = RetrieverService(
        section,
        EdgeStore(args.store, optimize_after_s=3600),
        DenseEmbedder(section.embedding),
        SparseEmbedder(section.bm25),
        reranker,
    )
    rows = shipped_rows("pubmedqa", "pubmedqa-eval.jsonl")
    print(f"pubmedqa: {len(rows)} questions; {await prepare(service)}")
    hybrid, _ = await run_arm(service, rows, rerank=False, rerank_top=args.rerank_top)
    reranked, rerank_ms = await run_arm(service, rows, rerank=True, rerank_top=args.rerank_top)
    await service.store.close()

    print(
        f"re-ranker {args.reranker} over the top {args.rerank_top} fused candidates;"
        f" {args.threads} torch threads"
    )
    print(f"{'metric':<10} {'hybrid':>8} {'+rerank':>8} {'diff':>8}  95% CI (paired bootstrap)")
    for metric in hybrid:
        diff, low, high, p = paired_bootstrap(hybrid[metric], reranked[metric])
        print(
            f"{metric:<10} {statistics.mean(hybrid[metric]):>8.3f}"
            f" {statistics.mean(reranked[metric]):>8.3f} {diff:>+8.3f}"
            f"  [{low:+.3f}, {high:+.3f}] p={p:.3f}"
        )
    print(
        f"rerank stage ms per query: p50 {statistics.median(rerank_ms):.0f},"
        f" p95 {percentile(rerank_ms, 0.95):.0f}, mean {statistics.mean(rerank_ms):.0f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
