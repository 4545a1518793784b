"""Drift's CPU per request, against the target of 0.05 ms per gateway request.

    python load/bench_drift.py [--requests 20000] [--features 8] [--rps 200]

1. Gateway, on the request path: `AnswerDriftMonitor.observe` (what the accountant calls for
   each production answer), with `--features` features round-robin, every track already past
   its baseline and its window full, so each call appends and evicts (the steady state).
   `--threads` threads call it at once (the lock contended), each timing its own calls.
2. Gateway, off the request path: one export tick (`DriftService.export`'s computation: every
   feature's signals over a full window of 200 against its baseline), and that cost spread over
   the requests one tick sees at `--rps` requests per second and `drift.poll_s`.
3. Retriever, on the search path: `QueryDriftMonitor.observe` with a 384-float query vector.

CPU is `time.thread_time()` around each call (this thread's CPU only); calls shorter than the
clock's resolution are timed in batches of 100. Prints medians and percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections.abc import Callable

from trivium.gateway.config import DriftSection
from trivium.gateway.drift.monitor import AnswerDriftMonitor
from trivium.gateway.invoke.schemas import InvokeResponse, Lineage, Timings, Usage
from trivium.retriever.config import QueryDriftSection
from trivium.retriever.drift.monitor import QueryDriftMonitor

BATCH = 100


def answer(rng: random.Random, feature: str) -> InvokeResponse:
    generate = rng.gauss(900, 150)
    return InvokeResponse(
        id="ans_0",
        feature=feature,
        route="rag",
        variant=None,
        template="t@1",
        adapter=None,
        output="x" * rng.randint(100, 600),
        citations=[],
        usage=Usage(300, 100, 400 + rng.randint(-50, 50)),
        cost_usd=0.001,
        timings_ms=Timings(retrieve=20.0, generate=generate, total=generate + 25),
        lineage=Lineage(policy_hash="h"),
        groundedness=rng.random(),
        verdict="passed",
    )


def per_call_us(batches: list[float]) -> dict[str, float]:
    calls = sorted(b / BATCH * 1e6 for b in batches)
    return {
        "median": statistics.median(calls),
        "p95": calls[int(0.95 * (len(calls) - 1))],
        "p99": calls[int(0.99 * (len(calls) - 1))],
        "max": calls[-1],
    }


def timed_batches(call: Callable[[int], None], total: int) -> list[float]:
    batches = []
    for start in range(0, total, BATCH):
        began = time.thread_time()
        for i in range(start, start + BATCH):
            call(i)
        batches.append(time.thread_time() - began)
    return batches


def show(name: str, stats: dict[str, float]) -> None:
    print(f"{name:<46} " + "  ".join(f"{k} {v:8.2f} us" for k, v in stats.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rps", type=float, default=200.0)
    args = parser.parse_args()
    settings = DriftSection()
    rng = random.Random(16)
    features = [f"feature-{i}" for i in range(args.features)]
    answers = [answer(rng, features[i % len(features)]) for i in range(2048)]
    monitor = AnswerDriftMonitor(settings)
    for i in range(len(features) * (settings.baseline_size + settings.window_size)):
        monitor.observe(features[i % len(features)], answers[i % len(answers)], labelled=False)

    results: list[list[float]] = [[] for _ in range(args.threads)]

    def worker(slot: int) -> None:
        def observe(i: int) -> None:
            monitor.observe(features[i % len(features)], answers[i % len(answers)], False)

        results[slot] = timed_batches(observe, args.requests // args.threads)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    observe_us = per_call_us([b for r in results for b in r])
    show(f"gateway observe ({args.threads} threads)", observe_us)

    ticks = []
    for _ in range(20):
        began = time.thread_time()
        for feature in features:
            monitor.signals(monitor.snapshot(feature))
        ticks.append((time.thread_time() - began) * 1e6)
    tick_us = statistics.median(ticks)
    per_request = tick_us / (args.rps * settings.poll_s)
    print(
        f"gateway export tick, {args.features} features: median {tick_us:.0f} us; spread over "
        f"{args.rps:g} rps x {settings.poll_s:g} s = {per_request:.2f} us per request"
    )
    total = observe_us["median"] + per_request
    print(f"gateway drift CPU per request: {total / 1000:.4f} ms (target <= 0.05 ms)")

    query = QueryDriftMonitor(QueryDriftSection())
    vectors = [[rng.gauss(0, 1) for _ in range(384)] for _ in range(64)]
    scores = [0.03, 0.02, 0.018, 0.017, 0.016]

    def search(i: int) -> None:
        query.observe("docs", "hybrid", "what is drift?", vectors[i % 64], 0.6, scores)

    search_us = per_call_us(timed_batches(search, args.requests))
    show("retriever observe (384-float vector)", search_us)


if __name__ == "__main__":
    main()
