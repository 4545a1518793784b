"""The sliding window behind `GET /v1/stats`, shared by every process and replica via Redis.

`observe()` only updates an in-memory buffer (no I/O); a background task flushes it every
`flush_s` in one pipelined round trip. Redis layout, one hash per time slot
(`slot = floor(t / slot_s)`), expiring `window_s + slot_s` after its last write:

    <prefix>:stats:<slot>   fields "<feature>|<route>|<variant>|<stat>"
                            and "@key|<key name>||<stat>" per caller key (`group_by=key`)

with stat `n` (count), `e` (errors), `f` (answers served by a fallback), `c` (cost sum,
USD), `t` (tokens sum), `gs` / `gn` (groundedness sum / scored answers), `b<i>` (latency
bucket counts) and the product's feedback, `q<...>` (see `FEEDBACK_STATS`;
written by `observe_feedback` as deltas, so a replaced event moves its answer's count).
Feature and variant names never contain "|" (policy names are `[a-z0-9-]`). A summary
reads the window's slots in one pipeline and merges them, so the window is `window_s`
rounded up to whole slots, and lags each process by up to `flush_s`.

While Redis is down, `observe()` keeps buffering (bounded, see `MAX_BUFFERED`) and
`summary()` raises `StatsUnavailableError`: `GET /v1/stats` answers 503 with Retry-After,
naming the dependency, rather than a partial window from this replica alone that a
dashboard could not tell from the whole. Failures are logged at most once per
`LOG_INTERVAL_S` per kind (`LogThrottle`), with the number of lines suppressed.

Latency buckets are log-spaced by a factor of 1.1 from 1 ms to 120 s; a percentile is the
geometric middle of its bucket, so within that range its relative error is at most
sqrt(1.1) - 1 < 5%. Below 1 ms reads as 1 ms, above 120 s as 120 s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from trivium.common.aio import Periodic
from trivium.common.errors import UnavailableError
from trivium.common.logs import LogThrottle

__all__ = (
    "FEEDBACK_STATS",
    "FeedbackRates",
    "LatencyMs",
    "Rate",
    "RouteStats",
    "StatsRecorder",
    "StatsSummary",
    "StatsUnavailableError",
    "WindowStats",
    "bucket_index",
    "bucket_value_ms",
)

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0
STATS_RETRY_AFTER_S = 2

LOW_MS = 1.0
HIGH_MS = 120_000.0
RATIO = 1.1
_LOG_RATIO = math.log(RATIO)
TOP_BUCKET = math.ceil(math.log(HIGH_MS / LOW_MS) / _LOG_RATIO) + 1
"""Bucket 0 holds < 1 ms, bucket i in 1..TOP-1 holds [1.1^(i-1), 1.1^i) ms, TOP holds the rest."""
KEY_GROUP = "@key"
"""The feature slot of per-key entries (no feature name starts with '@')."""
FEEDBACK_STATS = ("qcn", "qcp", "qsn", "qsp", "qrn", "qrs", "qx", "qe")
"""Feedback counters per (feature, route, variant): completed reports / completed true,
satisfaction reports (rating or thumbs) / satisfied (rating >= 4, thumbs up), ratings / their
sum, answers corrected, answers escalated. Each answer counts once per kind (its last event)."""
MAX_BUFFERED = 10_000
"""Buffered (slot, feature, route, variant) entries kept across failed flushes."""


def bucket_index(ms: float) -> int:
    if ms < LOW_MS:
        return 0
    return min(int(math.log(ms / LOW_MS) / _LOG_RATIO) + 1, TOP_BUCKET)


def bucket_value_ms(index: int) -> float:
    """The value a bucket reports: its geometric middle, clamped to 1 ms .. 120 s."""
    if index <= 0:
        return LOW_MS
    if index >= TOP_BUCKET:
        return HIGH_MS
    return min(LOW_MS * math.pow(RATIO, index - 0.5), HIGH_MS)


class StatsUnavailableError(UnavailableError):
    code = "stats_unavailable"
    title = "Stats unavailable"


class LatencyMs(msgspec.Struct, frozen=True):
    p50: float
    p95: float
    p99: float


class Rate(msgspec.Struct, frozen=True):
    rate: float | None
    """None when nothing was counted."""
    count: int
    """completion, satisfaction: the answers reported (the denominator); correction,
    escalation: the answers corrected or escalated (the served answers are the denominator)."""


class FeedbackRates(msgspec.Struct, frozen=True):
    """What the calling product reported about the arm's answers (`POST /v1/feedback`)."""

    completion: Rate
    """Answers whose task was completed, of those with a `completed` report."""
    satisfaction: Rate
    """Ratings >= 4 and thumbs up, of the ratings and thumbs reported."""
    correction: Rate
    """Answers corrected, of the answers the arm served in the window."""
    escalation: Rate
    """Answers escalated to a person, of the answers the arm served in the window."""
    mean_rating: float | None


class WindowStats(msgspec.Struct, frozen=True):
    count: int
    errors: int
    error_rate: float
    latency_ms: LatencyMs
    mean_cost_usd: float
    mean_tokens: float
    feedback: FeedbackRates | None = None
    """Per feature, route and variant; not per caller key."""
    fallbacks: int = 0
    """Answers served by a fallback road (counted in `count`, not in `errors`)."""
    mean_groundedness: float | None = None
    """Over the answers that were scored; None when none was."""


class RouteStats(WindowStats, frozen=True):
    variants: dict[str, WindowStats] = {}
    """Per named variant of the experiment; empty when only the feature itself ran."""


class StatsSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    window_s: int
    generated_at: datetime
    features: dict[str, dict[str, RouteStats]]
    """feature -> route (road) -> stats."""
    keys: dict[str, WindowStats] | None = None
    """With `group_by=key`: caller key name -> stats (requests with a key only)."""


class _Acc:
    """Counts for one (slot, feature, route, variant), in memory or merged from Redis."""

    __slots__ = (
        "buckets",
        "cost",
        "count",
        "errors",
        "fallbacks",
        "feedback",
        "grounded_n",
        "grounded_sum",
        "tokens",
    )

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.fallbacks = 0
        self.grounded_sum = 0.0
        self.grounded_n = 0
        self.cost = 0.0
        self.tokens = 0
        self.buckets: dict[int, int] = {}
        self.feedback: dict[str, int] = {}

    def merge(self, other: _Acc) -> None:
        self.count += other.count
        self.errors += other.errors
        self.fallbacks += other.fallbacks
        self.grounded_sum += other.grounded_sum
        self.grounded_n += other.grounded_n
        self.cost += other.cost
        self.tokens += other.tokens
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        for stat, n in other.feedback.items():
            self.feedback[stat] = self.feedback.get(stat, 0) + n

    def stats(self, with_feedback: bool = True) -> WindowStats:
        return WindowStats(
            count=self.count,
            errors=self.errors,
            error_rate=self.errors / self.count if self.count else 0.0,
            latency_ms=self._latency(),
            mean_cost_usd=self.cost / self.count if self.count else 0.0,
            mean_tokens=self.tokens / self.count if self.count else 0.0,
            feedback=self._feedback() if with_feedback else None,
            fallbacks=self.fallbacks,
            mean_groundedness=round(self.grounded_sum / self.grounded_n, 4)
            if self.grounded_n
            else None,
        )

    def _feedback(self) -> FeedbackRates:
        """Counts are clamped at 0: a replaced event whose first one left the window would
        otherwise subtract what the window never added."""
        q = {stat: max(self.feedback.get(stat, 0), 0) for stat in FEEDBACK_STATS}
        served = max(self.count - self.errors, 0)
        return FeedbackRates(
            completion=_rate(q["qcp"], q["qcn"], q["qcn"]),
            satisfaction=_rate(q["qsp"], q["qsn"], q["qsn"]),
            correction=_rate(q["qx"], served, q["qx"]),
            escalation=_rate(q["qe"], served, q["qe"]),
            mean_rating=round(q["qrs"] / q["qrn"], 4) if q["qrn"] else None,
        )

    def _latency(self) -> LatencyMs:
        order = sorted(self.buckets.items())
        total = sum(self.buckets.values())

        def quantile(q: float) -> float:
            rank = max(math.ceil(q * total), 1)  # nearest rank
            seen = 0
            for index, n in order:
                seen += n
                if seen >= rank:
                    return round(bucket_value_ms(index), 3)
            return 0.0

        return LatencyMs(p50=quantile(0.5), p95=quantile(0.95), p99=quantile(0.99))


def _rate(hits: int, of: int, count: int) -> Rate:
    return Rate(rate=round(min(hits / of, 1.0), 4) if of else None, count=count)


_Key = tuple[int, str, str, str]  # slot, feature, route, variant


class StatsRecorder:
    """Buffers request observations and flushes them to the shared window in Redis."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        window_s: int,
        slot_s: int,
        flush_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.window_s = window_s
        self.slot_s = slot_s
        self.flush_s = flush_s
        self.clock = clock
        self._buffer: dict[_Key, _Acc] = {}
        self._loop = Periodic("stats-flush", self.flush_s, self.flush, log)
        self._failing = False
        self._throttle = LogThrottle(log, LOG_INTERVAL_S)

    def observe(
        self,
        feature: str,
        route: str,
        variant: str | None,
        seconds: float,
        ok: bool,
        cost_usd: float = 0.0,
        tokens: int = 0,
        fallback: bool = False,
        groundedness: float | None = None,
    ) -> None:
        """Record one finished request (no I/O). `feature` must come from the policy."""
        key = (int(self.clock() // self.slot_s), feature, route, variant or "")
        acc = self._buffer.get(key)
        if acc is None:
            acc = self._buffer[key] = _Acc()
        acc.count += 1
        if not ok:
            acc.errors += 1
        acc.cost += cost_usd
        acc.tokens += tokens
        if fallback:
            acc.fallbacks += 1
        if groundedness is not None:
            acc.grounded_sum += groundedness
            acc.grounded_n += 1
        index = bucket_index(seconds * 1000.0)
        acc.buckets[index] = acc.buckets.get(index, 0) + 1

    def observe_key(
        self, name: str, seconds: float, ok: bool, cost_usd: float, tokens: int
    ) -> None:
        """Record one finished request of caller key `name` (an operator-chosen name)."""
        self.observe(KEY_GROUP, name, None, seconds, ok, cost_usd, tokens)

    def observe_feedback(
        self, feature: str, route: str, variant: str | None, deltas: dict[str, int]
    ) -> None:
        """Add feedback counters (`FEEDBACK_STATS` names; negative moves a replaced event out)."""
        key = (int(self.clock() // self.slot_s), feature, route, variant or "")
        acc = self._buffer.get(key)
        if acc is None:
            acc = self._buffer[key] = _Acc()
        counters = acc.feedback
        for stat, n in deltas.items():
            counters[stat] = counters.get(stat, 0) + n

    def in_window(self, unix_s: float) -> bool:
        """Whether a time lies in a slot the window still holds."""
        return int(unix_s // self.slot_s) >= self._first_slot()

    def _slot_key(self, slot: int) -> str:
        return f"{self.prefix}:stats:{slot}"

    async def flush(self) -> None:
        """Write the buffer in one round trip; on a Redis error keep it (bounded), never raise."""
        if not self._buffer:
            return
        pending, self._buffer = self._buffer, {}
        ttl = self.window_s + self.slot_s
        pipe = self.client.pipeline(transaction=False)
        slots: set[int] = set()
        for (slot, feature, route, variant), acc in pending.items():
            key = self._slot_key(slot)
            slots.add(slot)
            _write(pipe, key, f"{feature}|{route}|{variant}|", acc)
        for slot in slots:
            pipe.expire(self._slot_key(slot), ttl)
        try:
            await pipe.execute()
        except (redis_errors.RedisError, OSError) as exc:
            self._keep(pending)
            self._failing = True
            self._throttle.warning(
                "flush",
                "stats flush failed; buffering",
                extra={"error": repr(exc), "buffered": len(self._buffer)},
            )
            return
        if self._failing:
            self._failing = False
            suppressed = self._throttle.reset("flush")
            log.info("stats flush recovered", extra={"suppressed": suppressed})

    def _keep(self, pending: dict[_Key, _Acc]) -> None:
        """Merge unsent entries back, dropping those already out of the window or over the cap."""
        oldest = self._first_slot()
        for key, acc in pending.items():
            if key[0] < oldest:
                continue
            current = self._buffer.get(key)
            if current is not None:
                current.merge(acc)
            elif len(self._buffer) < MAX_BUFFERED:
                self._buffer[key] = acc

    def _first_slot(self) -> int:
        slots = max(math.ceil(self.window_s / self.slot_s), 1)
        return int(self.clock() // self.slot_s) - slots + 1

    async def _read_slots(self, first: int) -> list[dict[bytes, bytes]]:
        """The slot hashes from `first` (at the earliest, the window's first) to now."""
        last = self._first_slot() + max(math.ceil(self.window_s / self.slot_s), 1)
        pipe = self.client.pipeline(transaction=False)
        for slot in range(max(first, self._first_slot()), last):
            pipe.hgetall(self._slot_key(slot))
        try:
            hashes: list[dict[bytes, bytes]] = await pipe.execute()
        except (redis_errors.RedisError, OSError) as exc:
            self._throttle.warning("summary", "stats window unreadable", extra={"error": repr(exc)})
            raise StatsUnavailableError(
                "the stats window is kept in Redis, which does not answer; retry shortly",
                retry_after_s=STATS_RETRY_AFTER_S,
                extra={"dependency": "redis"},
            ) from exc
        self._throttle.reset("summary")
        return hashes

    async def variant_window(self, feature: str, since: float) -> dict[str, WindowStats]:
        """Per variant of `feature` over every route, from the slot holding `since` (at the
        earliest, the window's first) to now: what a rollout step's guards compare."""
        hashes = await self._read_slots(int(since // self.slot_s))
        merged: dict[str, _Acc] = {}
        prefix = feature + "|"
        for fields in hashes:
            for raw_field, raw_value in fields.items():
                text = raw_field.decode()
                if not text.startswith(prefix):
                    continue
                name, _, stat = text.rpartition("|")
                parts = name.split("|")
                if len(parts) == 3 and parts[2]:
                    _add_field(merged.setdefault(parts[2], _Acc()), stat, raw_value)
        return {variant: acc.stats() for variant, acc in sorted(merged.items())}

    async def summary(self, feature: str | None = None, group_by_key: bool = False) -> StatsSummary:
        """Merge the window's slots from Redis; `feature` keeps only that feature;
        `group_by_key` adds the per-key totals."""
        hashes = await self._read_slots(self._first_slot())
        merged: dict[tuple[str, str, str], _Acc] = {}
        keys: dict[str, _Acc] = {}
        for fields in hashes:
            for raw_field, raw_value in fields.items():
                name, _, stat = raw_field.decode().rpartition("|")
                parts = name.split("|")
                if len(parts) != 3:
                    continue
                if parts[0] == KEY_GROUP:
                    if group_by_key:
                        _add_field(keys.setdefault(parts[1], _Acc()), stat, raw_value)
                    continue
                if feature is not None and parts[0] != feature:
                    continue
                key = (parts[0], parts[1], parts[2])
                acc = merged.get(key)
                if acc is None:
                    acc = merged[key] = _Acc()
                _add_field(acc, stat, raw_value)
        return StatsSummary(
            window_s=self.window_s,
            generated_at=datetime.fromtimestamp(self.clock(), UTC),
            features=_group(merged),
            keys={name: acc.stats(with_feedback=False) for name, acc in sorted(keys.items())}
            if group_by_key
            else None,
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop the flush loop and flush what is still buffered."""
        await self._loop.stop()
        await self.flush()


def _write(pipe: Pipeline, key: str, field: str, acc: _Acc) -> None:
    if acc.count or not acc.feedback:
        pipe.hincrby(key, field + "n", acc.count)
    for stat, n in acc.feedback.items():
        if n:
            pipe.hincrby(key, field + stat, n)
    if acc.errors:
        pipe.hincrby(key, field + "e", acc.errors)
    if acc.fallbacks:
        pipe.hincrby(key, field + "f", acc.fallbacks)
    if acc.grounded_n:
        pipe.hincrby(key, field + "gn", acc.grounded_n)
        pipe.hincrbyfloat(key, field + "gs", acc.grounded_sum)
    if acc.cost:
        pipe.hincrbyfloat(key, field + "c", acc.cost)
    if acc.tokens:
        pipe.hincrby(key, field + "t", acc.tokens)
    for index, n in acc.buckets.items():
        pipe.hincrby(key, f"{field}b{index}", n)


def _add_field(acc: _Acc, stat: str, raw: bytes) -> None:
    with contextlib.suppress(ValueError):
        if stat == "n":
            acc.count += int(raw)
        elif stat == "e":
            acc.errors += int(raw)
        elif stat == "f":
            acc.fallbacks += int(raw)
        elif stat == "gn":
            acc.grounded_n += int(raw)
        elif stat == "gs":
            acc.grounded_sum += float(raw)
        elif stat == "c":
            acc.cost += float(raw)
        elif stat == "t":
            acc.tokens += int(raw)
        elif stat.startswith("q"):
            acc.feedback[stat] = acc.feedback.get(stat, 0) + int(raw)
        elif stat.startswith("b"):
            index = int(stat[1:])
            acc.buckets[index] = acc.buckets.get(index, 0) + int(raw)


def _group(merged: dict[tuple[str, str, str], _Acc]) -> dict[str, dict[str, RouteStats]]:
    routes: dict[tuple[str, str], tuple[_Acc, dict[str, WindowStats]]] = {}
    for (feature, route, variant), acc in sorted(merged.items()):
        total, variants = routes.setdefault((feature, route), (_Acc(), {}))
        total.merge(acc)
        if variant:
            variants[variant] = acc.stats()
    features: dict[str, dict[str, RouteStats]] = {}
    for (feature, route), (total, variants) in routes.items():
        s = total.stats()
        features.setdefault(feature, {})[route] = RouteStats(
            count=s.count,
            errors=s.errors,
            error_rate=s.error_rate,
            latency_ms=s.latency_ms,
            mean_cost_usd=s.mean_cost_usd,
            mean_tokens=s.mean_tokens,
            feedback=s.feedback,
            fallbacks=s.fallbacks,
            mean_groundedness=s.mean_groundedness,
            variants=variants,
        )
    return features
