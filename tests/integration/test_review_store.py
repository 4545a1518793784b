"""The review store's bound, retention, decisions and audit against a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis

from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RedisSettings
from trivium.gateway.invoke.schemas import Lineage
from trivium.gateway.reviews.queue import new_review_id
from trivium.gateway.reviews.schemas import ReviewCase, ReviewDecision
from trivium.gateway.reviews.store import ALREADY, DECIDED, MISSING, ReviewStore

DAY_S = 24 * 3600


@pytest.fixture
async def client(redis_server: RedisServerProcess) -> AsyncIterator[Redis]:
    redis = redis_from_url(redis_server.url, RedisSettings())
    yield redis
    await redis.aclose()


def case(created_ms: int, feature: str = "kb") -> ReviewCase:
    return ReviewCase(
        id=new_review_id(created_ms),
        feature=feature,
        reason="flagged",
        created_ms=created_ms,
        answer_id="ans_x",
        request_id="r",
        caller="app",
        input={"question": "q"},
        output="an answer",
        passages=[],
        citations=[],
        lineage=Lineage(policy_hash="h"),
        route="rag",
    )


def store(client: Redis, max_per_feature: int = 3) -> ReviewStore:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return ReviewStore(client, prefix, retention_s=DAY_S, max_per_feature=max_per_feature)


async def test_a_full_queue_evicts_its_oldest_decided_case_and_refuses_when_all_pend(
    client: Redis,
) -> None:
    reviews = store(client)
    now = int(time.time() * 1000)
    first, second, third = (case(now + i) for i in range(3))
    for one in (first, second, third):
        assert await reviews.enqueue(one, owner="")
    assert not await reviews.enqueue(case(now + 3), owner="")  # three pending: full
    decision = ReviewDecision("approve", "alice", now + 4)
    assert (await reviews.decide(second.id, decision, now + 4)).result == DECIDED
    fourth = case(now + 5)
    assert await reviews.enqueue(fourth, owner="")  # evicts `second`, the only decided one
    assert await reviews.get(second.id) is None
    kept = {s.id for s in await reviews.summaries("kb", None, 10)}
    assert kept == {first.id, third.id, fourth.id}
    depth = await reviews.depth("kb")
    assert (depth.pending, depth.oldest_ms) == (3, first.created_ms)


async def test_a_decision_is_audited_once_and_a_second_one_is_refused(client: Redis) -> None:
    reviews = store(client)
    now = int(time.time() * 1000)
    one = case(now)
    await reviews.enqueue(one, owner="k1")
    corrected = ReviewDecision("correct", "alice", now + 1, correction="better")
    assert (await reviews.decide(one.id, corrected, now + 1)).result == DECIDED
    again = await reviews.decide(one.id, ReviewDecision("reject", "bob", now + 2), now + 2)
    assert (again.result, again.previous_status) == (ALREADY, "corrected")
    assert again.previous is not None
    assert again.previous.reviewer == "alice"
    unknown = await reviews.decide(new_review_id(now), corrected, now)
    assert unknown.result == MISSING
    audit = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(reviews.audit))
    actions = [(f[b"action"], f[b"actor"]) for _, f in audit]
    assert actions == [(b"enqueued", b"app"), (b"correct", b"alice")]
    stored = await reviews.get(one.id)
    assert stored is not None
    assert (stored.status, stored.owner) == ("corrected", "k1")
    (row,) = await reviews.decided_rows("kb")
    assert row.expected.answer == "better"


async def test_cases_past_the_retention_leave_the_indexes(client: Redis) -> None:
    reviews = store(client, max_per_feature=10)
    now = int(time.time() * 1000)
    old = case(now - 2 * DAY_S * 1000)
    await reviews.enqueue(old, owner="")
    await reviews.enqueue(case(now), owner="")
    assert [s.id for s in await reviews.summaries("kb", "pending", 10)] != [old.id]
    assert old.id not in {s.id for s in await reviews.summaries("kb", None, 10)}
    assert (await reviews.depth("kb")).pending == 1
