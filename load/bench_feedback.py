"""Feedback's cost: gateway CPU and Redis round trips per `POST /v1/feedback`, and what answer
records add to the invoke path.

    python load/bench_feedback.py [--answers 2000] [--feedback 4000] [--redis-url URL]

Against a real redis-server (a private one on a free port by default), with the gateway's own
objects (`AnswerLog`, `FeedbackStore`, `FeedbackService`, `StatsRecorder`), it:

1. adds `--answers` answers to the record buffer (`AnswerLog.add`: what invoke pays) and
   flushes them (one pipelined round trip per flush);
2. sends `--feedback` events through `FeedbackService.submit` (what the route runs after
   Litestar has decoded the body and the guard has found the key), one at a time, each kind in
   turn, half of them replacing an earlier event, a tenth corrections;
3. reads the Redis server's `INFO commandstats` before and after each phase, so commands are
   counted by the server itself: a round trip is one client command (EVALSHA, or a pipeline);
   the commands the script runs inside Redis are listed apart.

CPU is `time.thread_time()` around each call: this thread's CPU only, so time spent waiting
for Redis is not counted, the client's encoding and parsing are. Prints medians and
percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings
from trivium.gateway.callers.auth import ANONYMOUS
from trivium.gateway.feedback.ids import new_answer_id
from trivium.gateway.feedback.records import AnswerLog
from trivium.gateway.feedback.schemas import FeedbackRequest
from trivium.gateway.feedback.service import FeedbackService
from trivium.gateway.feedback.store import FeedbackStore
from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse, Lineage, Timings, Usage
from trivium.gateway.telemetry.stats import StatsRecorder

PREFIX = "bench"
EVENTS: list[dict[str, object]] = [
    {"kind": "completed", "value": True},
    {"kind": "rating", "value": 4},
    {"kind": "thumbs", "value": "up"},
    {"kind": "escalated", "value": False},
    {"kind": "completed", "value": False},
    {"kind": "rating", "value": 2},
    {"kind": "thumbs", "value": "down"},
    {"kind": "escalated", "value": True},
    {"kind": "completed", "value": True},
    {"kind": "corrected", "correction": {"label": "billing"}},
]


def answer(now_ms: int) -> tuple[InvokeRequest, InvokeResponse]:
    request = InvokeRequest(input={"question": "where is my refund for order 1234?"}, user="u-1")
    response = InvokeResponse(
        id=new_answer_id(now_ms),
        feature="support-kb",
        route="rag",
        variant="canary-template",
        template="support-answer@7",
        adapter=None,
        output="Refunds take five days [1].",
        citations=[],
        usage=Usage(120, 12, 132),
        cost_usd=0.0002,
        timings_ms=Timings(total=40.0),
        lineage=Lineage(
            policy_hash="0123456789abcdef", policy_version=3, template="support-answer@7"
        ),
    )
    return request, response


async def commands(client: Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }


def summary(name: str, micros: list[float]) -> None:
    ordered = sorted(micros)

    def at(q: float) -> float:
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    print(
        f"{name:<34} n={len(ordered):>6}  median {statistics.median(ordered):7.1f} µs  "
        f"p90 {at(0.9):7.1f}  p99 {at(0.99):7.1f}  mean {statistics.fmean(ordered):7.1f}"
    )


async def bench(url: str, answers: int, feedback: int) -> None:
    client = redis_from_url(url, RedisSettings())
    log = AnswerLog(
        client,
        prefix=PREFIX,
        retention_s=7 * 86400,
        flush_s=3600,
        max_input_bytes=4096,
        max_buffered=answers + 1,
    )
    stats = StatsRecorder(client, prefix=PREFIX, window_s=300, slot_s=10, flush_s=3600)
    service = FeedbackService(FeedbackStore(client, PREFIX, log), stats, 7 * 86400)
    now_ms = int(time.time() * 1000)
    made = [answer(now_ms) for _ in range(answers)]
    await client.ping()

    add_us: list[float] = []
    for request, response in made:
        began = time.thread_time()
        log.add(request, response)
        add_us.append((time.thread_time() - began) * 1e6)
    before = await commands(client)
    began = time.thread_time()
    await log.flush()
    flush_cpu = time.thread_time() - began
    flushed = delta(before, await commands(client))
    flushed.pop("info", None)

    bodies = [
        FeedbackRequest(answer_id=made[i % answers][1].id, **EVENTS[i % len(EVENTS)])  # type: ignore[arg-type]
        for i in range(feedback)
    ]
    for warm in bodies[:50]:
        await service.submit(warm, ANONYMOUS)
    before = await commands(client)
    submit_us: list[float] = []
    for body in bodies:
        began = time.thread_time()
        await service.submit(body, ANONYMOUS)
        submit_us.append((time.thread_time() - began) * 1e6)
    sent = delta(before, await commands(client))
    sent.pop("info", None)

    print(f"redis {url}; {answers} answers, {feedback} feedback events")
    summary("invoke path: AnswerLog.add", add_us)
    print(
        f"{'answer records flush':<34} {answers} records in {sum(flushed.values())} commands, "
        f"1 round trip (pipelined), {flush_cpu / answers * 1e6:.1f} µs CPU a record "
        f"(off the request path): {flushed}"
    )
    summary("feedback: FeedbackService.submit", submit_us)
    trips = sent.get("evalsha", 0) + sent.get("eval", 0)
    others = {k: v for k, v in sent.items() if k not in ("evalsha", "eval", "hget", "hset", "xadd")}
    print(
        f"{'feedback: round trips a request':<34} {(trips + sum(others.values())) / feedback:.3f} "
        f"(script calls {trips}, other client commands {others or 0}; inside the script: "
        f"{ {k: sent.get(k, 0) for k in ('hget', 'hset', 'xadd')} })"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--feedback", type=int, default=4000)
    parser.add_argument("--redis-url", help="default: a private server on a free port")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(bench(args.redis_url, args.answers, args.feedback))
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServerProcess(Path(tmp), port=free_tcp_port(), persist=False)
        server.start()
        try:
            asyncio.run(bench(server.url, args.answers, args.feedback))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
