"""The resolve cache: served locally, invalidated across processes by pub/sub within 1 s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.registry import TEMPLATE_KIND, ArtifactVersion, Registry
from trivium.registry.errors import RegistryUnavailableError

if TYPE_CHECKING:
    from tests.conftest import RegistryBackend

QA = "Q: {{ question }}\nA:"
VARIABLES = {"variables": ["question"]}
PROPAGATION_S = 1.0  # "a rollback is seen by every process within one second"


def unique() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def cache_hits() -> float:
    value = REGISTRY.get_sample_value(
        "trivium_registry_cache_requests_total", {"kind": "template", "result": "hit"}
    )
    return value or 0.0


async def script_calls(client: Redis) -> int:
    """How many registry scripts (EVALSHA) the Redis server has run, from any client."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s}s")
        await asyncio.sleep(0.005)


async def settle(registry: Registry, events: list[str | None], name: str, count: int) -> None:
    """Wait until this registry's listener has seen `count` events for `name`, so that no
    echo of an earlier write is still on its way to invalidate what we cache next."""
    await wait_until(lambda: events.count(name) >= count, f"{count} events for {name}")


async def cached(registry: Registry, ref: str) -> ArtifactVersion:
    """Resolve `ref` once to fill the cache, then once more that must be a cache hit."""
    filled = await registry.resolve(ref)
    hits = cache_hits()
    again = await registry.resolve(ref)
    assert cache_hits() == hits + 1, f"{ref} was not served from the cache"
    assert again == filled
    return filled


async def two_versions_in_production(
    registry: Registry, writer: Registry | None = None
) -> tuple[str, list[str | None]]:
    """Publish v1 and v2 of a new template through `writer` (default: `registry`), point
    production at v1, and wait until `registry` has heard all three events.
    Returns the name and the live list of events `registry` receives."""
    writer = writer or registry
    events: list[str | None] = []
    registry.on_change(events.append)
    name = unique()
    for i in (1, 2):
        await writer.publish(name, f"{QA} (v{i})", VARIABLES)
    await writer.promote(name, "production", 1)
    await settle(registry, events, name, 3)
    return name, events


async def seen_within(registry: Registry, ref: str, version: int, timeout_s: float) -> float:
    """Poll `ref` until it resolves to `version`; return how long that took."""
    start = time.monotonic()
    while True:
        current = (await registry.resolve(ref)).version
        elapsed = time.monotonic() - start
        if current == version:
            return elapsed
        if elapsed > timeout_s:
            raise AssertionError(
                f"{ref} still resolves to version {current} after {elapsed:.2f}s; "
                f"expected {version} within {timeout_s}s"
            )
        await asyncio.sleep(0.005)


async def test_resolve_is_served_from_the_cache(
    registry_backend: RegistryBackend, registry: Registry
) -> None:
    events: list[str | None] = []
    registry.on_change(events.append)
    assert registry.cache_subscribed
    name = unique()
    await registry.publish(name, QA, VARIABLES)
    await registry.publish(name, QA + " (v2)", VARIABLES)
    await registry.promote(name, "production", 1)
    await settle(registry, events, name, 3)

    client = registry_backend.client
    first = await registry.resolve(name)
    assert first.version == 1
    await registry.resolve(f"{name}@2")
    calls, hits = await script_calls(client), cache_hits()
    for _ in range(5):
        assert await registry.resolve(name) == first
        assert (await registry.resolve(f"{name}@2")).version == 2
    assert cache_hits() == hits + 10
    assert await script_calls(client) == calls, "a cached resolve reached Redis"


async def test_uncached_registry_always_asks_redis(registry_backend: RegistryBackend) -> None:
    registry = await registry_backend.registry(cache=False)
    name = unique()
    await registry.publish(name, QA, VARIABLES)
    await registry.promote(name, "production", 1)
    await registry.resolve(name)  # loads the script on a fresh server (NOSCRIPT, LOAD, EVALSHA)
    calls = await script_calls(registry_backend.client)
    for _ in range(3):
        assert (await registry.resolve(name)).version == 1
    assert await script_calls(registry_backend.client) == calls + 3
    with pytest.raises(RuntimeError, match="cache=True"):
        registry.on_change(print)


async def test_own_writes_are_visible_at_once(registry: Registry) -> None:
    events: list[str | None] = []
    registry.on_change(events.append)
    name = unique()
    await registry.publish(name, QA, VARIABLES)
    await registry.publish(name, QA + " (v2)", VARIABLES)
    await registry.promote(name, "production", 1)
    await settle(registry, events, name, 3)
    assert (await cached(registry, name)).version == 1

    await registry.promote(name, "production", 2)
    assert (await registry.resolve(name)).version == 2  # no waiting for the pub/sub echo
    await settle(registry, events, name, 4)
    assert (await cached(registry, name)).version == 2
    await registry.rollback(name, "production")
    assert (await registry.resolve(name)).version == 1


async def test_another_process_moving_a_label_invalidates_within_a_second(
    registry_backend: RegistryBackend, registry: Registry
) -> None:
    name, events = await two_versions_in_production(registry)
    assert (await cached(registry, name)).version == 1

    promoted = await registry_backend.run_worker(
        op="promote", name=name, label="production", version=2, actor="other-process"
    )
    assert promoted == {"move": {"action": "promote", "from": 1, "to": 2, "changed": True}}
    await seen_within(registry, name, 2, PROPAGATION_S)
    await settle(registry, events, name, 4)
    assert (await cached(registry, name)).version == 2

    rolled_back = await registry_backend.run_worker(
        op="rollback", name=name, label="production", actor="other-process"
    )
    assert rolled_back == {"move": {"action": "rollback", "from": 2, "to": 1, "changed": True}}
    await seen_within(registry, name, 1, PROPAGATION_S)
    assert events.count(name) >= 5  # the listener saw both moves, not a cache miss by luck

    history = await registry.history(name)
    assert [(e.action, e.actor) for e in history[-2:]] == [
        ("promote", "other-process"),
        ("rollback", "other-process"),
    ]


async def test_another_registry_instance_is_invalidated_too(
    registry_backend: RegistryBackend, registry: Registry
) -> None:
    writer = await registry_backend.registry(new_client=True, cache=False)
    events: list[str | None] = []
    registry.on_change(events.append)
    name = unique()
    for i in (1, 2, 3):
        await writer.publish(name, f"{QA} (v{i})", VARIABLES)
    await writer.promote(name, "canary", 1)
    await settle(registry, events, name, 4)
    assert (await cached(registry, f"{name}@canary")).version == 1
    for version in (3, 2):
        await writer.promote(name, "canary", version)
        await seen_within(registry, f"{name}@canary", version, PROPAGATION_S)
    await writer.rollback(name, "canary")
    await seen_within(registry, f"{name}@canary", 3, PROPAGATION_S)
    # Republishing identical content changes nothing, a new version changes no label.
    await writer.publish(name, f"{QA} (v4)", VARIABLES)
    assert (await registry.resolve(f"{name}@canary")).version == 3


async def test_a_lost_subscription_drops_label_entries(
    registry_backend: RegistryBackend, registry: Registry
) -> None:
    """Events published while the listener is reconnecting are missed; the resubscription
    must flush cached labels so that the change is still seen within a second."""
    writer = await registry_backend.registry(new_client=True, cache=False)
    name, events = await two_versions_in_production(registry, writer)
    assert (await cached(registry, name)).version == 1

    resubscriptions = events.count(None)
    killed = await registry_backend.client.client_kill_filter(_type="pubsub")
    assert killed >= 1
    await writer.promote(name, "production", 2)  # while the listener is (likely) away
    await seen_within(registry, name, 2, PROPAGATION_S)
    await wait_until(lambda: events.count(None) > resubscriptions, "resubscription", 2.0)
    assert registry.cache_subscribed


# -- Redis goes away and comes back -----------------------------------------------------------


@pytest.fixture
def dedicated_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A private server for one test that stops it (not the session's server). Persistent,
    so that what was published survives the restart."""
    server = RedisServerProcess(tmp_path / "redis", port=free_tcp_port(), persist=True)
    server.start()
    yield server
    server.stop()


async def test_redis_outage_serves_cached_refs_and_recovers(
    dedicated_redis: RedisServerProcess,
) -> None:
    settings = RegistrySettings(key_prefix=f"t{uuid.uuid4().hex[:12]}")
    client = redis_from_url(dedicated_redis.url, RedisSettings())
    registry = Registry(client, TEMPLATE_KIND, settings)
    await registry.start()
    try:
        await _outage_and_recovery(registry, dedicated_redis, settings)
    finally:
        await registry.close()
        await client.aclose()


async def _outage_and_recovery(
    registry: Registry, server: RedisServerProcess, settings: RegistrySettings
) -> None:
    name, events = await two_versions_in_production(registry)
    production = await cached(registry, name)
    version_2 = await cached(registry, f"{name}@2")
    # Serve a few requests at once, as a gateway does: the pool now holds several connections.
    await asyncio.gather(*(registry.get(name, v) for v in (1, 2) * 3))

    await asyncio.to_thread(server.stop)
    assert not await registry.ping()
    # What was cached keeps serving...
    assert await registry.resolve(name) == production
    assert await registry.resolve(f"{name}@2") == version_2
    # ...what was not is a clear 503, and so is every write.
    for ref in (f"{name}@1", f"{name}@canary", f"{name}@production"):
        with pytest.raises(RegistryUnavailableError) as unavailable:
            await registry.resolve(ref)
        assert unavailable.value.status_code == 503
        assert unavailable.value.code == "registry_unavailable"
        assert unavailable.value.retry_after_s >= 1
        assert "registry store unreachable during resolve" in unavailable.value.message
    writes: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("publish", lambda: registry.publish(name, f"{QA} (v3)", VARIABLES)),
        ("promote", lambda: registry.promote(name, "production", 2)),
        ("rollback", lambda: registry.rollback(name, "production")),
    ]
    for what, write in writes:
        with pytest.raises(RegistryUnavailableError) as unavailable:
            await write()
        assert unavailable.value.status_code == 503
        assert f"registry store unreachable during {what}" in unavailable.value.message
    await wait_until(lambda: not registry.cache_subscribed, "noticing the lost feed")
    assert await registry.resolve(name) == production  # still served while unsubscribed

    # The same server comes back on the same port.
    restarted = RedisServerProcess(server.data_dir, port=server.port, persist=True)
    await asyncio.to_thread(restarted.start)
    try:
        await wait_until(lambda: registry.cache_subscribed, "resubscription", timeout_s=5.0)
        # Redis is back: concurrent requests must all succeed, whichever pooled connection
        # each one gets (checked at the end, so that the rest of the recovery runs anyway).
        burst = await asyncio.gather(
            *(registry.get(name, v) for v in (1, 2) * 3), return_exceptions=True
        )
        failed = [r for r in burst if isinstance(r, BaseException)]
        assert await registry.ping()
        third = await registry.publish(name, f"{QA} (v3)", VARIABLES)
        assert third.created
        assert third.artifact.version == 3  # the data survived; numbering continues
        await settle(registry, events, name, 4)
        assert await cached(registry, name) == production

        other_client = redis_from_url(restarted.url, RedisSettings())
        other = Registry(other_client, TEMPLATE_KIND, settings, cache=False)
        try:
            move = await other.promote(name, "production", 3, expected_current=1)
            assert move.changed
            await seen_within(registry, name, 3, PROPAGATION_S)
            await other.rollback(name, "production")
            await seen_within(registry, name, 1, PROPAGATION_S)
        finally:
            await other_client.aclose()
    finally:
        await asyncio.to_thread(restarted.stop)
    assert not failed, (
        f"BUG: after Redis came back (listener resubscribed), {len(failed)} of {len(burst)} "
        f"concurrent reads still failed: {failed[0]!r}. Connections that sat in the pool "
        "during the outage are handed out stale and the client has no retry policy "
        "(see redis_from_url in trivium.common.redis)."
    )
