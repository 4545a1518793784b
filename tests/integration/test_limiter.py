"""The limiter against a real Redis: exact windows from several limiters at once, the
boundary, settlement, budgets, and what each Redis-down policy does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from trivium.common.errors import TooManyRequestsError, UnavailableError
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings
from trivium.gateway.callers import Caller, KeyRecord, Limiter
from trivium.gateway.policy.model import Callers

OPEN = Callers()
CLOSED = Callers(on_redis_down="fail_closed")


def caller(name: str = "svc", **limits: object) -> Caller:
    record = KeyRecord(
        id=uuid.uuid4().hex[:12],
        name=name,
        owner="o",
        features=("*",),
        scopes=("invoke",),
        secret_hash="-",
        created_at=0.0,
        created_by="t",
        **limits,  # type: ignore[arg-type]
    )
    return Caller(record.name, frozenset(record.scopes), record)


@pytest.fixture
async def clients(redis_server: RedisServerProcess) -> AsyncIterator[list[Redis]]:
    made = [redis_from_url(redis_server.url, RedisSettings()) for _ in range(3)]
    yield made
    for client in made:
        await client.aclose()


def limiters(clients: list[Redis], window_s: float = 60.0) -> list[Limiter]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    return [Limiter(client, prefix, window_s, settle_flush_s=0.05) for client in clients]


async def outcome(limiter: Limiter, who: Caller, callers: Callers = OPEN, tokens: int = 10) -> str:
    try:
        await limiter.admit(who, "faq", callers, tokens)
    except TooManyRequestsError as exc:
        return exc.code
    return "ok"


async def test_three_limiters_admit_exactly_the_limit(clients: list[Redis]) -> None:
    group = limiters(clients)
    who = caller(rpm=50)
    results = await asyncio.gather(*(outcome(group[i % 3], who) for i in range(90)))
    assert results.count("ok") == 50
    assert results.count("rate_limited") == 40


async def test_the_window_slides(clients: list[Redis]) -> None:
    (limiter, *_) = limiters(clients, window_s=0.5)
    who = caller(rpm=2)
    assert [await outcome(limiter, who) for _ in range(3)] == ["ok", "ok", "rate_limited"]
    await asyncio.sleep(0.55)
    assert await outcome(limiter, who) == "ok"


async def test_unlimited_keys_cost_no_round_trip(clients: list[Redis]) -> None:
    (limiter, *_) = limiters(clients)
    assert await limiter.admit(caller(), "faq", OPEN, 10) is None


async def test_settlement_replaces_the_reservation_and_charges_the_budget(
    clients: list[Redis],
) -> None:
    (limiter, *_) = limiters(clients)
    who = caller(tpm=100)
    grant = await limiter.admit(who, "faq", OPEN, 60)
    assert grant is not None
    assert grant.headers["x-ratelimit-remaining-tokens"] == "40"
    assert await outcome(limiter, who, tokens=60) == "rate_limited"  # 60 + 60 > 100
    limiter.settle(grant, 5, 0.0)
    await limiter.flush()
    after = await limiter.admit(who, "faq", OPEN, 60)
    assert after is not None
    assert after.headers["x-ratelimit-remaining-tokens"] == "35"  # 100 - 5 used - 60

    thrifty = caller(budget_usd_month=0.5)
    spent = await limiter.admit(thrifty, "faq", OPEN, 10)
    assert spent is not None
    assert await outcome(limiter, thrifty) == "ok"  # nothing settled yet
    limiter.settle(spent, 5, 0.6)  # rides on the next admission: no flush needed
    assert await outcome(limiter, thrifty) == "budget_exceeded"


async def test_admissions_export_the_budget_and_the_cluster_wide_spend(
    clients: list[Redis],
) -> None:
    one, two, _ = limiters(clients)
    name = f"spender-{uuid.uuid4().hex[:8]}"
    who = caller(name, budget_usd_day=1.0, budget_usd_month=30.0)
    first = await one.admit(who, "faq", OPEN, 10)
    assert first is not None
    assert _budget(name) == {"day": (1.0, 0.0), "month": (30.0, 0.0)}
    one.settle(first, 5, 0.25)
    await one.flush()
    second = await two.admit(who, "faq", OPEN, 10)  # another replica reads the shared spend
    assert second is not None
    assert _budget(name) == {"day": (1.0, 0.25), "month": (30.0, 0.25)}
    two.settle(second, 5, 0.8)
    assert await outcome(two, who) == "budget_exceeded"  # a refusal reads the spend too
    assert _budget(name) == {"day": (1.0, 1.05), "month": (30.0, 1.05)}


def _budget(name: str) -> dict[str, tuple[float | None, float | None]]:
    return {
        period: (
            REGISTRY.get_sample_value("trivium_caller_budget_usd", {"key": name, "period": period}),
            REGISTRY.get_sample_value("trivium_caller_spend_usd", {"key": name, "period": period}),
        )
        for period in ("day", "month")
    }


async def test_redis_down_fail_open_limits_locally_fail_closed_refuses(tmp_path: Path) -> None:
    server = RedisServerProcess(tmp_path, port=free_tcp_port(), persist=False)
    server.start()
    client = redis_from_url(server.url, RedisSettings())
    try:
        limiter = Limiter(client, "down", 60.0, settle_flush_s=0.05)
        who = caller(rpm=2)
        assert await outcome(limiter, who) == "ok"
        server.stop()
        degraded = _degraded("fail_open")
        assert [await outcome(limiter, who) for _ in range(3)] == ["ok", "ok", "rate_limited"]
        assert _degraded("fail_open") - degraded == 3
        with pytest.raises(UnavailableError) as refused:
            await limiter.admit(who, "faq", CLOSED, 10)
        assert refused.value.code == "limits_unavailable"
        assert refused.value.status_code == 503
    finally:
        await client.aclose()
        server.stop()


def _degraded(policy: str) -> float:
    value = REGISTRY.get_sample_value("trivium_limiter_degraded_total", {"policy": policy})
    return value or 0.0


async def test_retry_after_points_at_the_oldest_request(clients: list[Redis]) -> None:
    (limiter, *_) = limiters(clients, window_s=3.0)
    who = caller(rpm=1)
    started = time.monotonic()
    assert await outcome(limiter, who) == "ok"
    with pytest.raises(TooManyRequestsError) as refused:
        await limiter.admit(who, "faq", OPEN, 1)
    assert refused.value.retry_after_s == 3
    assert time.monotonic() - started < 3
