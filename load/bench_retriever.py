"""Retriever benchmark: quality on CISI, ingest throughput, search latency at scale.

    .venv/bin/python load/bench_retriever.py quality [--rerank-model DIR]
    .venv/bin/python load/bench_retriever.py speed [--sizes 10000,100000] [--rerank-model DIR]
        [--backend edge|qdrant-local]
    .venv/bin/python load/bench_retriever.py backends [--repeat 3] [--sample-docs 100]
    quality and speed take [--embedding-backend torch|onnx] [--rerank-backend torch|onnx]
        [--variant int8]

`quality` ingests CISI (1,460 abstracts) through the real service on the embedded engine and
reports nDCG@10 and Recall@100 (document level: a document counts at its best chunk) for
BM25, dense, hybrid and hybrid + re-rank. `speed` compares ingest throughput with the bare
embedding throughput of the same model, then grows the collection to each size with copies
of the CISI chunks (their vectors jittered, so HNSW sees distinct points) and times searches,
one at a time and then from 8 and 32 concurrent searchers (with the query micro-batcher and
without). ONNX exports are cached under var/bench/onnx-cache. `backends` loads the embedding
model on torch, ONNX fp32 and ONNX int8 in one process and alternates them round by round
(query embedding p50, chunk throughput), so that the load of a shared machine falls on each
alike. `quality --save-rankings F` writes each road's top 10 per query; `--compare-rankings F`
reports the share of queries whose top 10 is in the same order as in F (int8 against fp32).
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

from qdrant_client import AsyncQdrantClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trivium.common.contracts.retriever import (
    CollectionCreate,
    DocumentIn,
    SearchMode,
    SearchRequest,
)
from trivium.retriever.config import RetrieverSection
from trivium.retriever.indexing.chunking import sentence_spans
from trivium.retriever.indexing.documents import chunk_document, embedding_text
from trivium.retriever.search.batching import QueryBatcher
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.search.rerank import Reranker
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.base import ChunkPoint
from trivium.retriever.store.edge import EdgeStore
from trivium.retriever.store.qdrant import QdrantStore

CISI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cisi" / "beir"
ONNX_CACHE = Path(__file__).resolve().parents[1] / "var" / "bench" / "onnx-cache"


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


def build(
    store_dir: Path, args: argparse.Namespace, backend: str = "edge", deep: bool = False
) -> RetrieverService:
    """`deep`: 300 hits per query for Recall@100 at document level; else the defaults."""
    search: dict[str, Any] = {"max_query_chars": 20_000}
    if deep:
        search.update(max_k=400, prefetch_limit=400)
    embedding = {"backend": args.embedding_backend, "onnx_variant": args.variant}
    section = RetrieverSection.model_validate({"search": search, "embedding": embedding})
    reranker = (
        Reranker(
            args.rerank_model,
            backend=args.rerank_backend,
            onnx_variant=args.variant,
            cache_dir=ONNX_CACHE,
        )
        if args.rerank_model
        else None
    )
    dense = DenseEmbedder(section.embedding, cache_dir=ONNX_CACHE)
    print(
        f"embedding on {dense.backend} ({dense.variant}); re-rank on "
        f"{reranker.backend if reranker else '-'}; load average {load_average()}"
    )
    return RetrieverService(
        section,
        EdgeStore(store_dir, optimize_after_s=3600)
        if backend == "edge"
        else QdrantStore(AsyncQdrantClient(location=":memory:"), local=True),
        dense,
        SparseEmbedder(section.bm25),
        reranker,
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


async def ingest_cisi(service: RetrieverService, docs: list[DocumentIn]) -> tuple[float, int]:
    await service.store.start()
    await service.create_collection(CollectionCreate("cisi"))
    began = time.perf_counter()
    chunks = 0
    for start in range(0, len(docs), 256):
        chunks += (await service.ingest("cisi", docs[start : start + 256])).chunks_written
    elapsed = time.perf_counter() - began
    await optimize(service)
    return elapsed, chunks


async def optimize(service: RetrieverService) -> None:
    """Edge: build the HNSW and payload indexes now (the service would, once writes settle)."""
    if isinstance(service.store, EdgeStore):
        await service.store.optimize_now("cisi")


async def quality(args: argparse.Namespace) -> None:
    docs, queries, qrels = load_cisi(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        service = build(Path(tmp), args, deep=True)
        elapsed, chunks = await ingest_cisi(service, docs)
        print(f"CISI: {len(docs)} documents, {chunks} chunks, ingest {elapsed:.1f} s")
        print(
            f"{'road':<24} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>7}"
            f"   ({len(qrels)} judged queries)"
        )
        runs: list[tuple[str, RetrieverService, SearchMode, bool]] = [
            ("BM25", service, "sparse", False),
            ("dense", service, "dense", False),
        ]
        for dense_weight, sparse_weight in args.weights:
            weighted = reweighted(service, dense_weight, sparse_weight)
            runs.append((f"hybrid {dense_weight:g}:{sparse_weight:g}", weighted, "hybrid", False))
        if service.reranker is not None:
            dense_weight, sparse_weight = args.weights[0]
            weighted = reweighted(service, dense_weight, sparse_weight)
            label = f"hybrid {dense_weight:g}:{sparse_weight:g} + rerank"
            runs.append((label, weighted, "hybrid", True))
        rankings: dict[str, dict[str, list[str]]] = {}
        for label, runner, mode, rerank in runs:
            ndcg, recall, p50, rankings[label] = await evaluate(
                runner, queries, qrels, mode, rerank
            )
            print(f"{label:<24} {ndcg:>8.3f} {recall:>7.3f} {p50:>7.1f}")
        await service.store.close()
    if args.save_rankings:
        args.save_rankings.write_text(json.dumps(rankings))
    if args.compare_rankings:
        reference = json.loads(args.compare_rankings.read_text())
        print(f"top-10 order agreement with {args.compare_rankings.name}:")
        for label, ranked in rankings.items():
            if label in reference:
                same = sum(ranked[q] == reference[label].get(q) for q in ranked)
                overlap = statistics.mean(
                    len(set(ranked[q]) & set(reference[label].get(q, []))) / 10 for q in ranked
                )
                print(
                    f"  {label:<24} identical order {same}/{len(ranked)}, "
                    f"top-10 overlap {overlap:.1%}"
                )


def reweighted(service: RetrieverService, dense: float, sparse: float) -> RetrieverService:
    """The same store and models under other fusion weights."""
    section = service.settings.model_copy(
        update={
            "search": service.settings.search.model_copy(
                update={"dense_weight": dense, "sparse_weight": sparse}
            )
        }
    )
    return RetrieverService(section, service.store, service.dense, service.sparse, service.reranker)


async def evaluate(
    service: RetrieverService,
    queries: dict[str, str],
    qrels: dict[str, set[str]],
    mode: SearchMode,
    rerank: bool,
) -> tuple[float, float, float, dict[str, list[str]]]:
    """Mean nDCG@10, mean Recall@100, median latency and each query's top 10 documents."""
    ndcgs, recalls, latencies = [], [], []
    top10: dict[str, list[str]] = {}
    for query_id, relevant in qrels.items():
        request = SearchRequest(
            query=queries[query_id],
            k=100 if rerank else 300,
            mode=mode,
            rerank=rerank,
            rerank_top=100 if rerank else None,
        )
        response = await service.search("cisi", request)
        ranked = list(dict.fromkeys(hit.doc_id for hit in response.hits))
        top10[query_id] = ranked[:10]
        ndcgs.append(ndcg_at(ranked, relevant, 10))
        recalls.append(recall_at(ranked, relevant, 100))
        latencies.append(response.timings_ms["total"])
    return (
        statistics.mean(ndcgs),
        statistics.mean(recalls),
        statistics.median(latencies),
        top10,
    )


async def speed(args: argparse.Namespace) -> None:
    docs, queries, _ = load_cisi(args.data)
    query_texts = list(queries.values())
    with tempfile.TemporaryDirectory() as tmp:
        service = build(Path(tmp), args, args.backend)
        sample = docs[: args.sample_docs]
        texts = [
            embedding_text(d.title, draft.chunk.text)
            for d in sample
            for draft in chunk_document(d, "h", service.recipe)
        ]
        sentences = [d.text[a:b] for d in sample for a, b in sentence_spans(d.text)][:512]
        service.dense.embed(texts[:32])
        await service.store.start()
        bare, through, per_sentence = [], [], []
        for attempt in range(args.repeat):  # interleaved, so drift hits both alike
            began = time.perf_counter()
            service.dense.embed(texts)
            bare.append(len(texts) / (time.perf_counter() - began))
            name = "cisi" if attempt == 0 else f"rate{attempt}"
            await service.create_collection(CollectionCreate(name))
            began = time.perf_counter()
            written = (await service.ingest(name, sample)).chunks_written
            through.append(written / (time.perf_counter() - began))
            began = time.perf_counter()
            service.dense.embed(sentences)
            per_sentence.append(len(sentences) / (time.perf_counter() - began))
        query_embedding(service, query_texts, args.repeat)
        print(f"median of {args.repeat} runs, {len(sample)} CISI documents = {written} chunks")
        print(f"bare embedding, single sentences:   {statistics.median(per_sentence):7.1f} /s")
        print(f"bare embedding, the chunk texts:    {statistics.median(bare):7.1f} chunks/s")
        ratio = statistics.median(through) / statistics.median(bare)
        print(
            f"ingest through the service:         {statistics.median(through):7.1f} chunks/s "
            f"({ratio:.0%} of bare; runs {', '.join(f'{t:.1f}' for t in through)})"
        )
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
            await optimize(service)
            print(f"\n{total:,} chunks (optimize {time.perf_counter() - began:.1f} s)")
            print(f"{'search':<26} {'p50 ms':>8} {'p95 ms':>8} {'search p50':>11}")
            roads: list[tuple[str, SearchMode, bool]] = [
                ("hybrid k=10", "hybrid", False),
                ("dense k=10", "dense", False),
                ("sparse k=10", "sparse", False),
                ("hybrid k=10 + rerank 50", "hybrid", True),
            ]
            for label, mode, rerank in roads:
                if rerank:
                    if service.reranker is None:
                        continue
                    # copies share chunk hashes: start cold, as a new collection would
                    service.reranker.clear_cache()
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
        if args.compare_torch:
            await hybrid_by_backend(service, query_texts[: args.queries], total, args.repeat)
        await concurrency(service, query_texts, total, args)
        print(f"load average {load_average()}")
        await service.store.close()


def query_embedding(service: RetrieverService, query_texts: list[str], repeat: int) -> None:
    """One query per call, as a search embeds it: the latency a lone search pays."""
    single = []
    for _ in range(repeat):
        for text in query_texts:
            began = time.perf_counter()
            service.dense.embed([text])
            single.append((time.perf_counter() - began) * 1000)
    print(
        f"query embedding, {len(query_texts)} CISI queries x {repeat}: "
        f"p50 {statistics.median(single):.1f} ms, p95 {percentile(single, 0.95):.1f} ms, "
        f"p99 {percentile(single, 0.99):.1f} ms"
    )


async def hybrid_by_backend(
    service: RetrieverService, query_texts: list[str], total: int, repeat: int
) -> None:
    """Hybrid k=10 with the query embedded on torch, then on the service's own backend, round
    by round over the same index, so both see the same machine load."""
    embedders = {
        "torch": DenseEmbedder(service.settings.embedding.model_copy(update={"backend": "torch"})),
        service.dense.backend: service.dense,
    }
    totals: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(repeat):
        for name, embedder in embedders.items():
            service.queries = QueryBatcher(embedder.embed, max_batch=32, max_wait_s=0.001)
            for text in query_texts:
                request = SearchRequest(query=text, k=10, mode="hybrid")
                totals[name].append((await service.search("cisi", request)).timings_ms["total"])
    print(f"\nhybrid k=10 at {total:,} chunks by query-embedding backend, {repeat} rounds")
    for backend, values in totals.items():
        print(
            f"  {backend:<6} p50 {statistics.median(values):6.1f} ms  p95 "
            f"{percentile(values, 0.95):6.1f}  p99 {percentile(values, 0.99):6.1f}"
        )
    print(f"load average {load_average()}")


async def concurrency(
    service: RetrieverService, query_texts: list[str], total: int, args: argparse.Namespace
) -> None:
    print(
        f"\nconcurrent hybrid k=10 searches at {total:,} chunks ({args.concurrent_searches} each)"
    )
    print(f"{'searchers':<10} {'batching':<9} {'searches/s':>11} {'p50 ms':>8} {'p95 ms':>8}")
    for searchers in args.concurrency:
        for batching in (False, True):
            rate, latencies = await concurrent_searches(
                service, query_texts, searchers, args.concurrent_searches, batching
            )
            print(
                f"{searchers:<10} {'on' if batching else 'off':<9} {rate:>11.1f} "
                f"{statistics.median(latencies):>8.1f} {percentile(latencies, 0.95):>8.1f}"
            )


async def concurrent_searches(
    service: RetrieverService, queries: list[str], searchers: int, total: int, batching: bool
) -> tuple[float, list[float]]:
    """`searchers` tasks searching back to back until `total` searches are done; with batching
    off, each query is embedded in its own call (the batcher bounded to one query)."""
    embedding = service.settings.embedding
    service.queries = QueryBatcher(
        service.dense.embed,
        max_batch=embedding.query_batch_size if batching else 1,
        max_wait_s=embedding.query_batch_wait_ms / 1000 if batching else 0,
    )
    latencies: list[float] = []
    counter = iter(range(total))

    async def searcher() -> None:
        for n in counter:
            request = SearchRequest(query=queries[n % len(queries)], k=10, mode="hybrid")
            began = time.perf_counter()
            await service.search("cisi", request)
            latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(searcher() for _ in range(searchers)))
    return total / (time.perf_counter() - began), latencies


async def backends(args: argparse.Namespace) -> None:
    docs, queries, _ = load_cisi(args.data)
    section = RetrieverSection()
    embedders = {
        "torch": DenseEmbedder(section.embedding.model_copy(update={"backend": "torch"})),
        **{
            f"onnx {variant}": DenseEmbedder(
                section.embedding.model_copy(update={"onnx_variant": variant}),
                cache_dir=ONNX_CACHE,
            )
            for variant in ("fp32", "int8")
        },
    }
    recipe = build_recipe(section)
    texts = [
        embedding_text(d.title, draft.chunk.text)
        for d in docs[: args.sample_docs]
        for draft in chunk_document(d, "h", recipe)
    ]
    query_texts = list(queries.values())
    print(f"load average {load_average()}; {len(texts)} chunks, {len(query_texts)} queries")
    single: dict[str, list[float]] = {name: [] for name in embedders}
    rates: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(args.repeat):
        for name, embedder in embedders.items():
            for text in query_texts:
                began = time.perf_counter()
                embedder.embed([text])
                single[name].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            embedder.embed(texts)
            rates[name].append(len(texts) / (time.perf_counter() - began))
    print(f"{'backend':<10} {'query p50':>10} {'p95':>7} {'p99':>7}   chunks/s (median; runs)")
    for name in embedders:
        print(
            f"{name:<10} {statistics.median(single[name]):>8.1f}ms "
            f"{percentile(single[name], 0.95):>7.1f} {percentile(single[name], 0.99):>7.1f}"
            f"   {statistics.median(rates[name]):6.1f}; "
            f"{', '.join(f'{r:.1f}' for r in rates[name])}"
        )
    print(f"load average {load_average()}")


def build_recipe(section: RetrieverSection) -> Any:
    from trivium.retriever.indexing.documents import IndexRecipe

    return IndexRecipe(
        embedding_model="m",
        max_chars=section.chunking.max_chars,
        overlap_chars=section.chunking.overlap_chars,
        bm25="",
    )


def service_filter() -> Any:
    from trivium.retriever.search.filters import FilterSpec

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
    parser.add_argument("what", choices=["quality", "speed", "backends"])
    parser.add_argument("--data", type=Path, default=CISI)
    parser.add_argument("--rerank-model", type=Path, default=None)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000]
    )
    parser.add_argument(
        "--weights",
        type=lambda s: [tuple(float(w) for w in pair.split(":")) for pair in s.split(",")],
        default=[(1.0, 1.0)],
        help="quality: hybrid dense:sparse weights to try, e.g. 1:1,1:0.5",
    )
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="speed: ingest-rate runs")
    parser.add_argument(
        "--backend",
        choices=["edge", "qdrant-local"],
        default="edge",
        help="speed: Qdrant's engine in process, or qdrant-client's local mode",
    )
    parser.add_argument("--sample-docs", type=int, default=300, help="speed: ingest sample")
    parser.add_argument("--embedding-backend", choices=["torch", "onnx"], default="onnx")
    parser.add_argument("--rerank-backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument(
        "--variant", choices=["fp32", "int8"], default="fp32", help="of the ONNX models"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[8, 32],
        help="speed: concurrent searchers",
    )
    parser.add_argument("--concurrent-searches", type=int, default=256)
    parser.add_argument(
        "--compare-torch", action="store_true", help="speed: hybrid search per backend, in turns"
    )
    parser.add_argument("--save-rankings", type=Path, default=None)
    parser.add_argument("--compare-rankings", type=Path, default=None)
    args = parser.parse_args()
    runs = {"quality": quality, "speed": speed, "backends": backends}
    asyncio.run(runs[args.what](args))


if __name__ == "__main__":
    main()
