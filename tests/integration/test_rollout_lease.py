"""The rollout lease and fenced state writes on a real Redis: a holder that lost its lease
(paused or cut off past its time to live) cannot write, even if it still believes it leads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RedisSettings
from trivium.gateway.rollouts.lease import Lease
from trivium.gateway.rollouts.state import (
    Outcome,
    RolloutEvent,
    RolloutState,
    RolloutStore,
    advance,
)


@pytest.fixture
async def client(redis_server: RedisServerProcess) -> AsyncIterator[Redis]:
    redis = redis_from_url(redis_server.url, RedisSettings())
    yield redis
    await redis.aclose()


def fresh(rev: int = -1) -> RolloutState:
    return RolloutState(
        id="r1",
        feature="f",
        variant="canary",
        status="running",
        step=0,
        percent=5.0,
        started_at=1.0,
        step_started_at=1.0,
        rev=rev,
    )


def event(outcome: Outcome, token: int) -> RolloutEvent:
    return RolloutEvent(
        at=2.0, outcome=outcome, step=1, percent=5.0, reason="t", actor="x", token=token
    )


async def test_a_stale_leader_is_fenced_and_the_new_one_writes(client: Redis) -> None:
    store = RolloutStore(client, f"t{uuid.uuid4().hex[:10]}")
    a = Lease(client, store.lease_key, store.fence_key, "a", ttl_s=0.2)
    b = Lease(client, store.lease_key, store.fence_key, "b", ttl_s=5)
    assert await a.hold()
    a_token = a.token
    assert not await b.hold(), "a held lease is not taken"
    first = advance(fresh(), event("started", a.token), a.token)
    assert (
        await store.write(
            "f", "canary", -1, first, event("started", a.token), lease_value=a.value, token=a.token
        )
        == "ok"
    )

    await asyncio.sleep(0.3)  # a is "paused" past its time to live
    assert await b.hold()
    assert b.token > a.token
    second = advance(first, event("advanced", b.token), b.token, step=1, percent=50.0)
    assert (
        await store.write(
            "f",
            "canary",
            first.rev,
            second,
            event("advanced", b.token),
            lease_value=b.value,
            token=b.token,
        )
        == "ok"
    )

    # a wakes up still believing it leads: its write of the same step is refused
    stale = advance(first, event("advanced", a.token), a.token, step=1, percent=50.0)
    assert (
        await store.write(
            "f",
            "canary",
            first.rev,
            stale,
            event("advanced", a.token),
            lease_value=a.value,
            token=a.token,
        )
        == "fenced"
    )
    assert not await a.hold(), "the lost lease is not renewed"
    stored = await store.read("f", "canary")
    assert stored == second
    outcomes = [(e.outcome, e.token) for e in await store.audit_log()]
    assert outcomes == [("started", a_token), ("advanced", b.token)]


async def test_writes_compare_on_rev_so_an_operator_and_the_leader_never_overwrite(
    client: Redis,
) -> None:
    store = RolloutStore(client, f"t{uuid.uuid4().hex[:10]}")
    lease = Lease(client, store.lease_key, store.fence_key, "a", ttl_s=5)
    assert await lease.hold()
    first = advance(fresh(), event("started", lease.token), lease.token)
    assert (
        await store.write(
            "f", "canary", -1, first, None, lease_value=lease.value, token=lease.token
        )
        == "ok"
    )
    paused = advance(first, event("paused", 0), status="paused")
    assert await store.write("f", "canary", first.rev, paused, None) == "ok"  # the operator
    advanced = advance(first, event("advanced", lease.token), lease.token, step=1)
    result = await store.write(
        "f", "canary", first.rev, advanced, None, lease_value=lease.value, token=lease.token
    )
    assert result == "conflict"
    assert (await store.read("f", "canary")) == paused
    assert await store.indexed() == {("f", "canary")}
    assert (
        await store.write(
            "f", "canary", paused.rev, None, None, lease_value=lease.value, token=lease.token
        )
        == "ok"
    )
    assert await store.read("f", "canary") is None
    assert await store.indexed() == set()
