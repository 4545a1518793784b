"""Caller keys cached in process, invalidated over pub/sub like the registry's labels.

Every entry remembers the subscription epoch it was read in. An event for a key evicts it
at once (a revoked key is refused by every replica within the pub/sub delay); a
(re)subscription starts a new epoch, so older entries are re-read on their next use, since
events may have been missed. While Redis is down, re-reads fail and the entry already held
keeps serving: an outage does not lock out keys already seen. A key never seen cannot be
checked then (503). Unknown ids are cached too (bounded), so guessing does not cost a Redis
read per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter
from redis.exceptions import RedisError

from trivium.gateway.callers.errors import KeysUnavailableError
from trivium.gateway.callers.keys import KeyRecord
from trivium.gateway.callers.metrics import CALLER_METRICS
from trivium.gateway.callers.store import KeyStore

__all__ = ("KeyCache",)

KEY_CACHE_REQUESTS = Counter(
    "trivium_key_cache_requests_total",
    "Caller key lookups by result (hit, miss, stale_served: an old entry served while Redis "
    "is down).",
    ["result"],
)
_HIT = KEY_CACHE_REQUESTS.labels(result="hit")
_MISS = KEY_CACHE_REQUESTS.labels(result="miss")
_STALE = KEY_CACHE_REQUESTS.labels(result="stale_served")


@dataclass(slots=True, frozen=True)
class _Entry:
    record: KeyRecord | None
    epoch: int


class KeyCache:
    def __init__(self, store: KeyStore, max_entries: int = 100_000) -> None:
        self.store = store
        self.max_entries = max_entries
        self.subscribed = False
        self._entries: dict[str, _Entry] = {}
        self._unknown: dict[str, _Entry] = {}
        self._epoch = 0
        self._generation = 0

    async def get(self, key_id: str) -> KeyRecord | None:
        """The key's record (None: no such key); one dict lookup when cached."""
        entry = self._entries.get(key_id) or self._unknown.get(key_id)
        if entry is not None and entry.epoch == self._epoch:
            _HIT.inc()
            return entry.record
        _MISS.inc()
        epoch, generation = self._epoch, self._generation
        try:
            record = await self.store.fetch(key_id)
        except (RedisError, OSError) as exc:
            if entry is not None and entry.record is not None:
                _STALE.inc()
                return entry.record
            raise KeysUnavailableError(
                "API keys are checked against Redis, which does not answer; retry shortly",
                retry_after_s=2,
                field="authorization",
            ) from exc
        if generation == self._generation and epoch == self._epoch:
            self._put(key_id, _Entry(record, epoch))
        return record

    def _put(self, key_id: str, entry: _Entry) -> None:
        table = self._entries if entry.record is not None else self._unknown
        if len(table) >= self.max_entries:
            table.clear()
        table[key_id] = entry

    def invalidate(self, name: str) -> None:
        """An event for key id `name` (created, rotated, revoked)."""
        self._generation += 1
        CALLER_METRICS.forget(name)
        self._entries.pop(name, None)
        self._unknown.pop(name, None)

    def invalidate_labels(self) -> None:
        """A (re)subscription: every entry is re-read on its next use (kept meanwhile)."""
        self._generation += 1
        self._epoch += 1
        self._unknown.clear()
