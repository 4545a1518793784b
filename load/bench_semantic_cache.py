"""Semantic cache benchmark: hit and false-hit rates over thresholds, and the lookup's cost.

    .venv/bin/python load/bench_semantic_cache.py [--filler 300] [--lookups 300] [--json OUT]

The paraphrase set (`tests/data/semantic_cache_paraphrases.jsonl`, written by hand from the
triage tickets, the shipped PubMedQA questions and CISI queries): each row's `original` is
stored in one scope, as the gateway would store a first answer; its `paraphrase` (same
meaning) and its `near_miss` (one decisive word changed, so the original's answer is wrong
for it) are looked up. `--filler` CISI query sentences are stored under other scopes, so the
scope filter does real work. Per threshold:

- hit rate: paraphrases answered with their own original's answer;
- false-hit rate: near misses answered at all (every such answer is wrong), plus paraphrases
  answered with another row's answer, over all lookups that hit (`false/hits`) and over the
  near-miss lookups (`near-miss served`).

Then `--lookups` lookups (half paraphrases, half near misses) time the service's lookup in
process (embedding + filtered nearest-neighbour query), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trivium.common.contracts.retriever import CacheLookup, CacheStore
from trivium.retriever.config import RetrieverSection
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.edge import EdgeStore

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "tests" / "data" / "semantic_cache_paraphrases.jsonl"
CISI_QUERIES = ROOT.parent / "shared" / "data" / "cisi" / "beir" / "queries.jsonl"
THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
SCOPE = hashlib.sha256(b"bench").hexdigest()


def _scope(i: int) -> str:
    return hashlib.sha256(f"filler-{i}".encode()).hexdigest()


def _filler(n: int) -> list[str]:
    texts: list[str] = []
    if CISI_QUERIES.exists():
        with CISI_QUERIES.open() as lines:
            texts = [json.loads(line)["text"][:500] for line in lines]
    return [texts[i % len(texts)] if texts else f"filler question {i}" for i in range(n)]


async def main(filler: int, lookups: int) -> dict[str, object]:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    section = RetrieverSection()
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "edge", optimize_after_s=0.5)
        await store.start()
        dense = DenseEmbedder(section.embedding)
        service = RetrieverService(section, store, dense, SparseEmbedder(section.bm25), None)
        cache = service.cache

        def put(scope: str, text: str, origin: str) -> CacheStore:
            return CacheStore(scope, text, json.dumps({"for": origin}), origin, 3600, 100_000)

        for i, text in enumerate(_filler(filler)):
            await cache.store("bench", put(_scope(i), text, f"filler-{i}"))
        for row in rows:
            await cache.store("bench", put(SCOPE, row["original"], row["id"]))
        await store.optimize_now("_cache.bench")

        best: list[tuple[str, str, float, str]] = []  # (row, kind, similarity, origin)
        for row in rows:
            for kind in ("paraphrase", "near_miss"):
                found = await cache.lookup("bench", CacheLookup(SCOPE, row[kind], 0.0))
                assert found.hit is not None
                best.append((row["id"], kind, found.hit.similarity, found.hit.origin_id))

        table = []
        for threshold in THRESHOLDS:
            hits = [b for b in best if b[2] >= threshold]
            right = [b for b in hits if b[1] == "paraphrase" and b[3] == b[0]]
            near = [b for b in hits if b[1] == "near_miss"]
            wrong = len(hits) - len(right)
            table.append(
                {
                    "threshold": threshold,
                    "hit_rate": len(right) / len(rows),
                    "false_hit_share_of_hits": wrong / len(hits) if hits else 0.0,
                    "near_miss_served": len(near) / len(rows),
                    "hits": len(hits),
                    "false_hits": wrong,
                }
            )
        durations: list[float] = []
        texts = [row[kind] for row in rows for kind in ("paraphrase", "near_miss")]
        for i in range(lookups):
            began = time.perf_counter()
            await cache.lookup("bench", CacheLookup(SCOPE, texts[i % len(texts)], 0.9))
            durations.append((time.perf_counter() - began) * 1000)
        await store.close()
    durations.sort()
    return {
        "pairs": len(rows),
        "entries": filler + len(rows),
        "similarities": {
            "paraphrase": sorted(round(b[2], 4) for b in best if b[1] == "paraphrase"),
            "near_miss": sorted(round(b[2], 4) for b in best if b[1] == "near_miss"),
        },
        "thresholds": table,
        "lookup_ms": {
            "p50": statistics.median(durations),
            "p99": durations[min(len(durations) - 1, int(len(durations) * 0.99))],
            "n": len(durations),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filler", type=int, default=300)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(main(args.filler, args.lookups))
    print(f"{'threshold':>9} {'hit rate':>8} {'false/hits':>10} {'near-miss served':>16}")
    for row in result["thresholds"]:  # type: ignore[attr-defined]
        print(
            f"{row['threshold']:>9.2f} {row['hit_rate']:>8.3f} "
            f"{row['false_hit_share_of_hits']:>10.3f} {row['near_miss_served']:>16.3f}"
        )
    lookup = result["lookup_ms"]
    print(f"lookup p50 {lookup['p50']:.2f} ms, p99 {lookup['p99']:.2f} ms (n={lookup['n']})")  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
