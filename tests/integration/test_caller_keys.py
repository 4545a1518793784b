"""Caller keys against a real Redis: the store, the audited writes, the invalidated cache,
and authentication as every replica sees it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis

from trivium.common.errors import (
    ForbiddenError,
    HeaderTooLargeError,
    UnauthenticatedError,
    UnavailableError,
)
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings
from trivium.gateway.callers import CALLER_METRICS, Authenticator, KeyCache, KeySpec, KeyStore
from trivium.gateway.callers.errors import KeyNameTakenError, UnknownKeyError
from trivium.gateway.callers.keys import format_key, parse_key
from trivium.registry.cache import InvalidationListener

PEPPER = b"test-pepper"
PROPAGATION_S = 1.0


class Replica:
    """One gateway's view of the keys: its own client, cache and listener."""

    def __init__(self, url: str, prefix: str, admin_tokens: dict[str, SecretStr]) -> None:
        self.client: Redis = redis_from_url(url, RedisSettings())
        self.store = KeyStore(self.client, prefix, PEPPER)
        self.cache = KeyCache(self.store)
        self.listener = InvalidationListener(self.client, self.store.channel, self.cache)
        self.auth = Authenticator("keys", self.cache, admin_tokens)

    async def start(self) -> Replica:
        await self.listener.start()
        return self

    async def close(self) -> None:
        await self.listener.stop()
        await self.client.aclose()


@pytest.fixture
async def replicas(redis_server: RedisServerProcess) -> AsyncIterator[tuple[Replica, Replica]]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    tokens = {"root": SecretStr("bootstrap-token")}
    one = await Replica(redis_server.url, prefix, tokens).start()
    two = await Replica(redis_server.url, prefix, tokens).start()
    yield one, two
    await one.close()
    await two.close()


def spec(name: str = "checkout", **extra: object) -> KeySpec:
    return KeySpec(name=name, owner="team-pay", features=("faq",), **extra)  # type: ignore[arg-type]


def bearer(key: str) -> str:
    return f"Bearer {key}"


async def test_a_created_key_authenticates_and_stores_only_a_hash(
    replicas: tuple[Replica, Replica],
) -> None:
    one, two = replicas
    created = await one.store.create(spec(rpm=10), actor="alice")
    parsed = parse_key(created.key)
    assert parsed is not None
    assert created.key.startswith(f"trv_{created.record.id}_")
    raw = await one.client.get(one.store.record_key(created.record.id))
    assert raw is not None
    assert parsed.secret.encode() not in raw
    caller = await two.auth.authenticate(bearer(created.key))
    assert caller.name == "checkout"
    assert caller.record is not None
    assert caller.record.rpm == 10
    listed = [r.id for r in await one.store.all()]
    assert created.record.id in listed
    history = await one.store.history(created.record.id)
    assert [(h.action, h.actor) for h in history] == [("create", "alice")]


async def test_bad_keys_get_one_answer(replicas: tuple[Replica, Replica]) -> None:
    one, _ = replicas
    created = await one.store.create(spec(), actor="alice")
    key_id = created.record.id
    wrong_secret = format_key(key_id, "A" * 43)
    unknown = format_key("zzzzzzzzzzzz", "A" * 43)
    bodies = []
    for header in (bearer("nonsense"), bearer(wrong_secret), bearer(unknown), "Basic abc"):
        with pytest.raises(UnauthenticatedError) as caught:
            await one.auth.authenticate(header)
        bodies.append((caught.value.message, caught.value.field, caught.value.code))
    assert len(set(bodies)) == 1
    with pytest.raises(UnauthenticatedError) as missing:
        await one.auth.authenticate(None)
    assert missing.value.field == "authorization"
    with pytest.raises(HeaderTooLargeError):
        await one.auth.authenticate("Bearer " + "x" * 600)


async def test_rotate_and_revoke_reach_every_replica_within_a_second(
    replicas: tuple[Replica, Replica],
) -> None:
    one, two = replicas
    created = await one.store.create(spec(), actor="alice")
    await two.auth.authenticate(bearer(created.key))  # cached on replica two
    rotated = await one.store.rotate(created.record.id, actor="bob")
    await _refused_within(two, created.key)
    assert (await two.auth.authenticate(bearer(rotated.key))).name == "checkout"
    await one.store.revoke(created.record.id, actor="carol")
    await _refused_within(two, rotated.key)
    history = await one.store.history(created.record.id)
    assert [(h.action, h.actor) for h in history] == [
        ("create", "alice"),
        ("rotate", "bob"),
        ("revoke", "carol"),
    ]
    # The name is free again once revoked; a live name is not.
    again = await one.store.create(spec(), actor="alice")
    with pytest.raises(KeyNameTakenError):
        await one.store.create(spec(), actor="alice")
    await one.store.revoke(again.record.id, actor="alice")
    with pytest.raises(UnknownKeyError):
        await one.store.rotate(again.record.id, actor="alice")


async def _refused_within(replica: Replica, key: str) -> None:
    deadline = time.monotonic() + PROPAGATION_S
    while True:
        try:
            await replica.auth.authenticate(bearer(key))
        except UnauthenticatedError:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"key still accepted after {PROPAGATION_S} s")
        await asyncio.sleep(0.01)


async def test_a_revoked_key_takes_its_budget_series_with_it(
    replicas: tuple[Replica, Replica],
) -> None:
    """Its spend no longer grows: left behind, it would keep the near-budget alert firing
    until the month ends."""
    one, _ = replicas
    name = f"budgeted-{uuid.uuid4().hex[:8]}"
    created = await one.store.create(spec(name, budget_usd_day=5.0), actor="alice")
    # What the limiter records at the key's admission.
    CALLER_METRICS.spend(
        created.record.id, name, ("20260131", "202601"), (5.0, None), (4_500_000, 0)
    )
    labels = {"key": name, "period": "day"}
    assert REGISTRY.get_sample_value("trivium_caller_spend_usd", labels) == 4.5
    await one.store.revoke(created.record.id, actor="carol")
    deadline = time.monotonic() + PROPAGATION_S
    while REGISTRY.get_sample_value("trivium_caller_spend_usd", labels) is not None:
        assert time.monotonic() < deadline, "the revoked key's spend is still exported"
        await asyncio.sleep(0.01)
    assert REGISTRY.get_sample_value("trivium_caller_budget_usd", labels) is None


async def test_expired_keys_are_refused(replicas: tuple[Replica, Replica]) -> None:
    one, _ = replicas
    created = await one.store.create(spec(expires_at=time.time() - 1), actor="alice")
    with pytest.raises(UnauthenticatedError):
        await one.auth.authenticate(bearer(created.key))


async def test_scopes_features_and_bootstrap_tokens(replicas: tuple[Replica, Replica]) -> None:
    one, _ = replicas
    created = await one.store.create(spec(), actor="alice")
    caller = await one.auth.for_feature(bearer(created.key), "faq")
    assert caller.name == "checkout"
    with pytest.raises(ForbiddenError) as feature:
        await one.auth.for_feature(bearer(created.key), "billing")
    assert feature.value.code == "forbidden_feature"
    assert "billing" in feature.value.message
    with pytest.raises(ForbiddenError) as scope:
        await one.auth.for_route(bearer(created.key), "keys:admin", "")
    assert scope.value.code == "missing_scope"
    admin = await one.auth.for_route(bearer("bootstrap-token"), "keys:admin", "")
    assert admin.name == "root"
    with pytest.raises(ForbiddenError):
        await one.auth.for_feature(bearer("bootstrap-token"), "faq")  # admin: not invoke


async def test_a_redis_outage_keeps_seen_keys_and_refuses_unseen_ones(tmp_path: Path) -> None:
    server = RedisServerProcess(tmp_path, port=free_tcp_port(), persist=True)
    server.start()
    replica = await Replica(server.url, "outage", {}).start()
    try:
        seen = await replica.store.create(spec("seen"), actor="alice")
        unseen = await replica.store.create(spec("unseen"), actor="alice")
        await replica.auth.authenticate(bearer(seen.key))
        server.stop()
        assert (await replica.auth.authenticate(bearer(seen.key))).name == "seen"
        with pytest.raises(UnavailableError) as down:
            await replica.auth.authenticate(bearer(unseen.key))
        assert down.value.status_code == 503
        server.start()
        deadline = time.monotonic() + 5
        while True:  # after resubscription the cache re-reads, and the unseen key works
            try:
                assert (await replica.auth.authenticate(bearer(unseen.key))).name == "unseen"
                break
            except UnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await replica.close()
        server.stop()
