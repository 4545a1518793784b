"""The `/v1/stats` window on a real Redis: exact counts, percentiles within bucket error,
replicas summing up, old slots falling out, and a Redis outage kept off the request path."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from trivium.common.http.problems import PROBLEM_EXCEPTION_HANDLERS
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings
from trivium.gateway.callers import Authenticator, KeyCache, KeyStore
from trivium.gateway.telemetry.routes import StatsController
from trivium.gateway.telemetry.stats import (
    HIGH_MS,
    LOW_MS,
    StatsRecorder,
    StatsSummary,
    bucket_index,
    bucket_value_ms,
)

MAX_RELATIVE_ERROR = math.sqrt(1.1) - 1


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(redis_server: RedisServerProcess) -> AsyncIterator[Redis]:
    client = redis_from_url(redis_server.url, RedisSettings())
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def recorder(client: Redis, prefix: str, clock: Clock, window_s: int = 60) -> StatsRecorder:
    return StatsRecorder(
        client, prefix=prefix, window_s=window_s, slot_s=10, flush_s=0.05, clock=clock
    )


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def test_buckets_bound_the_relative_error() -> None:
    value = LOW_MS
    while value < HIGH_MS:
        estimate = bucket_value_ms(bucket_index(value))
        assert abs(estimate - value) / value <= MAX_RELATIVE_ERROR + 1e-9, value
        value *= 1.013
    assert bucket_value_ms(bucket_index(0.2)) == LOW_MS
    assert bucket_value_ms(bucket_index(10 * HIGH_MS)) == HIGH_MS


async def test_counts_are_exact_and_percentiles_within_bucket_error(
    client: Redis, prefix: str
) -> None:
    clock = Clock()
    stats = recorder(client, prefix, clock)
    latencies_ms = [5.0 + 3.7 * i for i in range(200)]  # 5 ms .. 741 ms
    for i, ms in enumerate(latencies_ms):
        clock.now += 0.1  # spread over two slots
        ok = i % 10 != 0
        stats.observe("support-kb", "rag", None, ms / 1000, ok, cost_usd=0.002, tokens=150)
    stats.observe("triage", "finetune", "lora-b", 0.05, True, cost_usd=0.0, tokens=10)
    await stats.flush()

    summary = await stats.summary()
    rag = summary.features["support-kb"]["rag"]
    assert rag.count == 200
    assert rag.errors == 20
    assert rag.error_rate == pytest.approx(0.1)
    assert rag.mean_cost_usd == pytest.approx(0.002)
    assert rag.mean_tokens == pytest.approx(150)
    assert rag.variants == {}
    for q, got in (
        (0.5, rag.latency_ms.p50),
        (0.95, rag.latency_ms.p95),
        (0.99, rag.latency_ms.p99),
    ):
        want = exact_percentile(latencies_ms, q)
        assert abs(got - want) / want <= MAX_RELATIVE_ERROR + 1e-6, (q, got, want)

    triage = summary.features["triage"]["finetune"]
    assert triage.count == 1
    assert set(triage.variants) == {"lora-b"}
    assert triage.variants["lora-b"].mean_tokens == 10
    assert summary.window_s == 60

    only = await stats.summary("triage")
    assert set(only.features) == {"triage"}
    assert (await stats.summary("no-such-feature")).features == {}


async def test_two_replicas_sum_up(client: Redis, prefix: str) -> None:
    clock = Clock()
    first, second = recorder(client, prefix, clock), recorder(client, prefix, clock)
    for _ in range(7):
        first.observe("support-kb", "rag", "a", 0.1, True, cost_usd=0.01, tokens=100)
    for _ in range(3):
        second.observe("support-kb", "rag", "b", 0.3, False, cost_usd=0.03, tokens=300)
    await first.flush()
    await second.flush()

    for reader in (first, second):
        rag = (await reader.summary()).features["support-kb"]["rag"]
        assert (rag.count, rag.errors) == (10, 3)
        assert rag.mean_cost_usd == pytest.approx(0.016)
        assert rag.mean_tokens == pytest.approx(160)
        assert rag.variants["a"].count == 7
        assert rag.variants["b"].error_rate == 1.0
        assert rag.latency_ms.p50 == pytest.approx(100, rel=MAX_RELATIVE_ERROR)
        assert rag.latency_ms.p99 == pytest.approx(300, rel=MAX_RELATIVE_ERROR)


async def test_old_slots_fall_out_of_the_window(client: Redis, prefix: str) -> None:
    clock = Clock(now=2_000_000.0)
    stats = recorder(client, prefix, clock, window_s=30)
    stats.observe("support-kb", "rag", None, 0.1, True)
    await stats.flush()
    clock.now += 15
    stats.observe("support-kb", "rag", None, 0.1, True)
    await stats.flush()
    assert (await stats.summary()).features["support-kb"]["rag"].count == 2

    clock.now += 20  # the first slot is now older than the window
    assert (await stats.summary()).features["support-kb"]["rag"].count == 1
    clock.now += 30
    assert (await stats.summary()).features == {}

    ttls = [await client.ttl(key) async for key in client.scan_iter(match=f"{prefix}:stats:*")]
    assert ttls
    assert all(0 < ttl <= 30 + 10 for ttl in ttls)


async def test_a_redis_outage_keeps_the_buffer_and_never_raises(
    tmp_path_factory: pytest.TempPathFactory, prefix: str
) -> None:
    server = RedisServerProcess(
        tmp_path_factory.mktemp("stats-redis"), port=free_tcp_port(), persist=False
    )
    server.start()
    client = redis_from_url(server.url, RedisSettings(socket_timeout_s=0.5, connect_timeout_s=0.5))
    try:
        clock = Clock()
        stats = recorder(client, prefix, clock)
        stats.observe("support-kb", "rag", None, 0.1, True)
        server.stop()
        await stats.flush()  # fails, keeps the observation
        stats.observe("support-kb", "rag", None, 0.2, False)
        await stats.flush()
        server.start()
        await stats.flush()
        rag = (await stats.summary()).features["support-kb"]["rag"]
        assert (rag.count, rag.errors) == (2, 1)
    finally:
        await client.aclose()
        server.stop()


def open_authenticator(client: Redis) -> Authenticator:
    """The route's scope guard, in `auth.mode: open` (reads take no key)."""
    return Authenticator("open", KeyCache(KeyStore(client, "stats-test", b"pepper")), {})


async def test_stop_flushes_and_the_route_serves_the_summary(
    client: Redis, redis_server: RedisServerProcess, prefix: str
) -> None:
    clock = Clock()
    stats = recorder(client, prefix, clock)
    stats.start()
    stats.observe("support-kb", "rag", None, 0.12, True, cost_usd=0.001, tokens=42)
    await stats.stop()  # flushes what the loop had not sent yet

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The test client runs the app on its own event loop: it gets its own client.
        async with redis_from_url(redis_server.url, RedisSettings()) as app_client:
            app.state.stats = recorder(app_client, prefix, clock)
            app.state.authenticator = open_authenticator(app_client)
            yield

    def provide_stats(state: State) -> StatsRecorder:
        served: StatsRecorder = state.stats
        return served

    app = Litestar(
        route_handlers=[StatsController],
        dependencies={"stats": Provide(provide_stats, sync_to_thread=False)},
        lifespan=[lifespan],
    )
    async with AsyncTestClient(app) as http:
        response = await http.get("/v1/stats")
        assert response.status_code == 200
        summary = msgspec.json.decode(response.content, type=StatsSummary)
        assert summary.features["support-kb"]["rag"].count == 1
        body = response.json()
        assert set(body["features"]["support-kb"]["rag"]["latency_ms"]) == {"p50", "p95", "p99"}

        filtered = await http.get("/v1/stats", params={"feature": "other"})
        assert filtered.status_code == 200
        assert filtered.json()["features"] == {}
        assert (await http.get("/v1/stats", params={"feature": "Bad Name!"})).status_code == 400


async def test_redis_down_is_a_503_naming_the_dependency_never_a_500(
    tmp_path_factory: pytest.TempPathFactory, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServerProcess(
        tmp_path_factory.mktemp("stats-down"), port=free_tcp_port(), persist=False
    )
    server.start()
    clock = Clock()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        settings = RedisSettings(socket_timeout_s=0.5, connect_timeout_s=0.5)
        async with redis_from_url(server.url, settings) as app_client:
            app.state.stats = recorder(app_client, prefix, clock)
            app.state.authenticator = open_authenticator(app_client)
            yield

    def provide_stats(state: State) -> StatsRecorder:
        served: StatsRecorder = state.stats
        return served

    app = Litestar(
        route_handlers=[StatsController],
        dependencies={"stats": Provide(provide_stats, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=PROBLEM_EXCEPTION_HANDLERS,
        logging_config=None,
    )
    try:
        async with AsyncTestClient(app) as http:
            assert (await http.get("/v1/stats")).status_code == 200
            server.stop()
            with caplog.at_level(logging.WARNING, logger="trivium.gateway.telemetry.stats"):
                answers = [await http.get("/v1/stats") for _ in range(3)]
            for response in answers:
                assert response.status_code == 503
                assert response.headers["retry-after"] == "2"
                assert response.headers["content-type"].startswith("application/problem+json")
                body = response.json()
                assert body["code"] == "stats_unavailable"
                assert body["dependency"] == "redis"
            warnings = [r for r in caplog.records if r.getMessage() == "stats window unreadable"]
            assert len(warnings) == 1, "one line per interval, not one per request"
            server.start()
            assert (await http.get("/v1/stats")).status_code == 200
    finally:
        server.stop()
