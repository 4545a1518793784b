"""The in-process cache of resolved references, kept honest by Redis pub/sub.

Version references (`name@3`) are immutable and cached for good. Label
references (`name@production`) are cached only while the invalidation listener
is subscribed, and a fill that raced with an invalidation is dropped. When Redis
goes away, cached entries keep serving; when the subscription comes back, label
entries are flushed, since events may have been missed in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import msgspec
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.common.aio import cancel_and_wait
from trivium.common.logs import LogThrottle
from trivium.registry.models import ArtifactVersion

__all__ = ("InvalidatedCache", "InvalidationListener", "ResolveCache")

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0

CACHE_REQUESTS = Counter(
    "trivium_registry_cache_requests_total",
    "Registry resolve calls by artifact kind and cache result.",
    ["kind", "result"],
)


class _Event(msgspec.Struct):
    name: str
    action: str


class ResolveCache:
    def __init__(self, kind: str, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.subscribed = False
        self._entries: dict[str, ArtifactVersion] = {}
        self._label_keys: dict[str, set[str]] = {}
        self._generation = 0
        self._hit = CACHE_REQUESTS.labels(kind=kind, result="hit")
        self._miss = CACHE_REQUESTS.labels(kind=kind, result="miss")

    def get(self, key: str) -> ArtifactVersion | None:
        entry = self._entries.get(key)
        if entry is None:
            self._miss.inc()
        else:
            self._hit.inc()
        return entry

    def contains(self, key: str) -> bool:
        """Whether `key` would be served from the cache (not counted as a hit or a miss)."""
        return key in self._entries

    def generation(self) -> int:
        return self._generation

    def put(self, key: str, artifact: ArtifactVersion, *, by_label: bool, generation: int) -> None:
        if by_label and (not self.subscribed or generation != self._generation):
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
            self._label_keys.clear()
        self._entries[key] = artifact
        if by_label:
            self._label_keys.setdefault(artifact.name, set()).add(key)

    def invalidate(self, name: str) -> None:
        self._generation += 1
        for key in self._label_keys.pop(name, ()):
            self._entries.pop(key, None)

    def invalidate_labels(self) -> None:
        self._generation += 1
        for keys in self._label_keys.values():
            for key in keys:
                self._entries.pop(key, None)
        self._label_keys.clear()


class InvalidatedCache(Protocol):
    """What the listener drives: `ResolveCache`, and any cache fed by the same kind of events
    (`{"name", "action"}` JSON) on its own channel (the gateway's caller keys)."""

    subscribed: bool

    def invalidate(self, name: str) -> None: ...

    def invalidate_labels(self) -> None:
        """Everything that may have changed unseen (called on every (re)subscription)."""


class InvalidationListener:
    """Subscribes to an event channel and invalidates the cache on each event."""

    def __init__(
        self, client: Redis, channel: str, cache: InvalidatedCache, retry_s: float = 0.5
    ) -> None:
        self.callbacks: list[Callable[[str | None], None]] = []
        self._client = client
        self._channel = channel
        self._cache = cache
        self._retry_s = retry_s
        self._task: asyncio.Task[None] | None = None
        self._first_subscribe = asyncio.Event()
        self._throttle = LogThrottle(log, LOG_INTERVAL_S)
        self._lost = False

    async def start(self, wait_s: float = 2.0) -> None:
        """Start listening; wait briefly for the first subscription (Redis may be down)."""
        self._task = asyncio.create_task(self._run(), name=f"registry-listener:{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_subscribe.wait(), wait_s)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except (RedisError, OSError) as exc:
                # Retried every `retry_s` while Redis is down: one line per LOG_INTERVAL_S.
                self._lost = True
                self._throttle.warning(
                    "feed",
                    "registry invalidation feed down; label reads are not cached meanwhile",
                    extra={"channel": self._channel, "error": str(exc)},
                )
                self._cache.subscribed = False
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self._retry_s)

    def _handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # A (re)subscription: anything may have changed while we were not listening.
            self._cache.invalidate_labels()
            self._cache.subscribed = True
            self._first_subscribe.set()
            if self._lost:
                self._lost = False
                suppressed = self._throttle.reset("feed")
                log.info(
                    "registry invalidation feed back",
                    extra={"channel": self._channel, "suppressed": suppressed},
                )
            self._notify(None)
        elif kind == "message":
            data = message.get("data")
            try:
                event = msgspec.json.decode(data if isinstance(data, bytes) else b"", type=_Event)
            except msgspec.DecodeError:
                log.warning("undecodable registry event", extra={"data": repr(data)})
                self._cache.invalidate_labels()
                self._notify(None)
                return
            self._cache.invalidate(event.name)
            self._notify(event.name)

    def _notify(self, name: str | None) -> None:
        for callback in self.callbacks:
            try:
                callback(name)
            except Exception:
                log.exception("registry change callback failed")
