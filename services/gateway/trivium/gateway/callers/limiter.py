"""Rate limits and budgets per key (and per key on a feature), exact across replicas.

`admit` runs ONE Lua script (`limiter_script.py`) per request, and only for a key that has
a limit or a budget: it first settles the key's finished requests queued in this process
(their real tokens replace the `max_tokens` reserved up front; their cost is added to the
day's and month's spend), then checks the budgets and every bucket's sliding window, and
records the request. What could not ride on a next admission within `settle_flush_s` is
written by a background flush, many keys in one pipelined round trip.

Every admission of a key with a budget also reads the key's day and month spend, exported
as `trivium_caller_spend_usd` beside `trivium_caller_budget_usd` (`metrics.py`): Prometheus
cannot read the budgets in Redis, and the near-budget alert compares the two.

Redis unreachable: the feature's `callers.on_redis_down` decides. `fail_open` admits under a
local per-process sliding window of the same limits (budgets unchecked), counted in
`trivium_limiter_degraded_total{policy="fail_open"}`; `fail_closed` answers 503.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.common.aio import Periodic
from trivium.common.logs import LogThrottle
from trivium.gateway.callers.auth import Caller
from trivium.gateway.callers.errors import (
    BudgetExceededError,
    LimitsUnavailableError,
    RateLimitedError,
)
from trivium.gateway.callers.keys import KeyRecord
from trivium.gateway.callers.limiter_script import LIMIT_SCRIPT
from trivium.gateway.callers.metrics import CALLER_METRICS
from trivium.gateway.policy.model import Callers

__all__ = ("Grant", "Limiter")

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_MAX_PENDING = 100_000
DAY_TTL_S = 2 * 86_400
MONTH_TTL_S = 32 * 86_400


@dataclass(slots=True)
class Grant:
    """An admitted request: what to settle afterwards, and the headers its answer carries."""

    key_id: str
    member: str
    buckets: tuple[str, ...]
    headers: dict[str, str]
    local: bool = False


@dataclass(slots=True)
class _Settlement:
    member: str
    tokens: int
    cost_micro: int
    buckets: tuple[str, ...]
    queued_at: float


@dataclass(slots=True)
class _LocalWindow:
    """The fail_open stand-in: one process's sliding window of one bucket."""

    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0


class Limiter:
    def __init__(self, client: Redis, prefix: str, window_s: float, settle_flush_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self.window_s = window_s
        self._window_ms = int(window_s * 1000)
        self.settle_flush_s = settle_flush_s
        self._script = client.register_script(LIMIT_SCRIPT)
        self._pending: dict[str, list[_Settlement]] = {}
        self._local: dict[str, _LocalWindow] = {}
        self._node = f"{os.getpid():x}{secrets.token_hex(3)}-"
        self._sequence = itertools.count()
        self._loop = Periodic("limiter-settle", self.settle_flush_s, self._tick, log)
        self._throttle = LogThrottle(log, 30.0)
        self._periods_until = 0.0
        self._period_names = ("", "")

    def _periods(self) -> tuple[str, str]:
        """This UTC day's and month's suffixes (`20260131`, `202601`), recomputed at the top
        of every hour (UTC days and months start on the hour)."""
        now = time.time()
        if now >= self._periods_until:
            moment = datetime.fromtimestamp(now, UTC)
            self._period_names = (f"{moment:%Y%m%d}", f"{moment:%Y%m}")
            self._periods_until = now - now % 3600 + 3600
        return self._period_names

    def _base(self, key_id: str) -> str:
        return f"{self._prefix}:key:{{{key_id}}}"

    async def admit(
        self, caller: Caller, feature: str, callers: Callers, max_tokens: int
    ) -> Grant | None:
        """Admit one request (raises 429 or 503), or None when nothing limits this caller."""
        record = caller.record
        if record is None:
            return None
        base = self._base(record.id)
        limits: list[tuple[str, int | None, int | None]] = []
        if record.rpm is not None or record.tpm is not None:
            limits.append((base, record.rpm, record.tpm))
        if callers.rpm_per_key is not None or callers.tpm_per_key is not None:
            limits.append((f"{base}:f:{feature}", callers.rpm_per_key, callers.tpm_per_key))
        budget_day, budget_month = record.budget_usd_day, record.budget_usd_month
        if not limits and budget_day is None and budget_month is None:
            return None
        member = f"{self._node}{next(self._sequence)}"
        pending = self._pending.pop(record.id, None) or []
        day, month = self._periods()
        keys = [f"{base}:spend:d:{day}", f"{base}:spend:m:{month}"]
        index: dict[str, int] = {}

        def bucket(name: str) -> int:
            found = index.get(name)
            if found is None:
                found = index[name] = len(keys) + 1
                keys.extend((f"{name}:req", f"{name}:tok", f"{name}:tokamt"))
            return found

        admit = [
            {"k": bucket(name), "rpm": _or_unset(rpm), "tpm": _or_unset(tpm)}
            for name, rpm, tpm in limits
        ]
        args = {
            "window": self._window_ms,
            "member": member,
            "reserve": max_tokens,
            "bday": _micro_or_none(budget_day),
            "bmonth": _micro_or_none(budget_month),
            "dttl": DAY_TTL_S,
            "mttl": MONTH_TTL_S,
            "settle": _settle_args(pending, bucket),
            "admit": admit,
        }
        try:
            reply = await self._script(keys=keys, args=[_encode(args)])
        except (RedisError, OSError) as exc:
            self._requeue(record.id, pending)
            return self._degraded(caller, feature, callers, limits, max_tokens, member, exc)
        self._throttle.reset("admit")
        names = tuple(name for name, _, _ in limits)
        status = reply[0]
        if status == b"ok":
            self._spent(record, (day, month), reply[1], reply[2])
            return Grant(record.id, member, names, _headers(limits, reply[3:]))
        if status == b"budget":
            self._spent(record, (day, month), reply[2], reply[3])
            period = reply[1].decode()
            CALLER_METRICS.rejected("budget_exceeded")
            retry = _until_period_end(datetime.now(UTC), period)
            spent = budget_day if period == "day" else budget_month
            raise BudgetExceededError(
                f"key {caller.name!r} has spent its {period}ly budget of ${spent:g}; it resets "
                f"in {retry} s",
                retry_after_s=retry,
                headers={},
            )
        which, unit, reset_ms = int(reply[1]) - 1, reply[2].decode(), int(reply[3])
        _, rpm, tpm = limits[which]
        CALLER_METRICS.rejected("rate_limited")
        limit = rpm if unit == "requests" else tpm
        where = f" on feature {feature!r}" if names[which] != base else ""
        raise RateLimitedError(
            f"key {caller.name!r} is over its {limit} {unit} per {self.window_s:g} s{where}",
            retry_after_s=max(math.ceil(reset_ms / 1000), 1),
            headers={
                f"x-ratelimit-limit-{unit}": str(limit),
                f"x-ratelimit-remaining-{unit}": "0",
                f"x-ratelimit-reset-{unit}": _duration(reset_ms),
            },
        )

    @staticmethod
    def _spent(record: KeyRecord, current: tuple[str, str], day: int, month: int) -> None:
        budgets = record.budget_usd_day, record.budget_usd_month
        if budgets != (None, None):
            CALLER_METRICS.spend(record.id, record.name, current, budgets, (day, month))

    def settle(self, grant: Grant, tokens: int, cost_usd: float) -> None:
        """Queue the request's real tokens and cost; no I/O here."""
        if grant.local:
            return
        queue = self._pending.setdefault(grant.key_id, [])
        if len(queue) < _MAX_PENDING:
            queue.append(
                _Settlement(
                    grant.member,
                    tokens,
                    round(cost_usd * 1_000_000),
                    grant.buckets,
                    time.monotonic(),
                )
            )

    # -- Redis down ---------------------------------------------------------------------

    def _degraded(
        self,
        caller: Caller,
        feature: str,
        callers: Callers,
        limits: list[tuple[str, int | None, int | None]],
        max_tokens: int,
        member: str,
        exc: BaseException,
    ) -> Grant:
        self._throttle.warning(
            "admit",
            "limiter cannot reach Redis",
            extra={"policy": callers.on_redis_down, "error": repr(exc)},
        )
        if callers.on_redis_down == "fail_closed":
            CALLER_METRICS.degraded("fail_closed")
            raise LimitsUnavailableError(
                f"feature {feature!r} refuses requests while its limits cannot be counted",
                retry_after_s=1,
                extra={"dependency": "redis"},
            )
        CALLER_METRICS.degraded("fail_open")
        now = time.monotonic()
        horizon = now - self.window_s
        windows = [self._local.setdefault(name, _LocalWindow()) for name, _, _ in limits]
        for window, (_, rpm, tpm) in zip(windows, limits, strict=True):
            while window.requests and window.requests[0] <= horizon:
                window.requests.popleft()
            while window.tokens and window.tokens[0][0] <= horizon:
                window.used -= window.tokens.popleft()[1]
            if rpm is not None and len(window.requests) >= rpm:
                CALLER_METRICS.rejected("rate_limited")
                raise RateLimitedError(
                    f"key {caller.name!r} is over its {rpm} requests per {self.window_s:g} s",
                    retry_after_s=max(math.ceil(window.requests[0] - horizon), 1),
                    headers={},
                )
            if tpm is not None and window.used and window.used + min(max_tokens, tpm) > tpm:
                CALLER_METRICS.rejected("rate_limited")
                raise RateLimitedError(
                    f"key {caller.name!r} is over its {tpm} tokens per {self.window_s:g} s",
                    retry_after_s=max(math.ceil(window.tokens[0][0] - horizon), 1),
                    headers={},
                )
        for window, (_, rpm, tpm) in zip(windows, limits, strict=True):
            if rpm is not None:
                window.requests.append(now)
            if tpm is not None:
                window.tokens.append((now, min(max_tokens, tpm)))
                window.used += min(max_tokens, tpm)
        record = caller.record
        assert record is not None
        return Grant(record.id, member, (), {}, local=True)

    # -- the background flush -------------------------------------------------------------

    def _requeue(self, key_id: str, settlements: list[_Settlement]) -> None:
        if settlements:
            queue = self._pending.setdefault(key_id, [])
            queue[:0] = settlements[: max(_MAX_PENDING - len(queue), 0)]

    async def flush(self, *, older_than_s: float = 0.0) -> None:
        """Write queued settlements that waited `older_than_s`, in one pipelined round trip."""
        cutoff = time.monotonic() - older_than_s
        due = [
            key_id
            for key_id, queue in self._pending.items()
            if queue and queue[0].queued_at <= cutoff
        ]
        if not due:
            return
        taken = {key_id: self._pending.pop(key_id) for key_id in due}
        day, month = self._periods()
        pipe = self._client.pipeline(transaction=False)
        for key_id, settlements in taken.items():
            base = self._base(key_id)
            keys = [f"{base}:spend:d:{day}", f"{base}:spend:m:{month}"]
            index: dict[str, int] = {}

            def bucket(name: str, keys: list[str] = keys, index: dict[str, int] = index) -> int:
                found = index.get(name)
                if found is None:
                    found = index[name] = len(keys) + 1
                    keys.extend((f"{name}:req", f"{name}:tok", f"{name}:tokamt"))
                return found

            args = {
                "window": self._window_ms,
                "dttl": DAY_TTL_S,
                "mttl": MONTH_TTL_S,
                "settle": _settle_args(settlements, bucket),
            }
            await self._script(keys=keys, args=[_encode(args)], client=pipe)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            for key_id, settlements in taken.items():
                self._requeue(key_id, settlements)
            self._throttle.warning(
                "flush", "limiter settle flush failed", extra={"error": repr(exc)}
            )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self.flush()

    async def _tick(self) -> None:
        CALLER_METRICS.roll_periods(self._periods())
        await self.flush(older_than_s=self.settle_flush_s)


def _settle_args(settlements: list[_Settlement], bucket: object) -> list[dict[str, object]]:
    assert callable(bucket)
    return [
        {"m": s.member, "t": s.tokens, "c": s.cost_micro, "b": [bucket(n) for n in s.buckets]}
        for s in settlements
    ]


def _or_unset(limit: int | None) -> int:
    return -1 if limit is None else limit


def _micro_or_none(usd: float | None) -> int:
    return -1 if usd is None else round(usd * 1_000_000)


def _until_period_end(now: datetime, period: str) -> int:
    if period == "day":
        end = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() + 86_400
    else:
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        end = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return max(math.ceil(end - now.timestamp()), 1)


def _duration(ms: int) -> str:
    """OpenAI's reset format: a duration such as `1s`, `6m0s`, `250ms`."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


def _headers(limits: list[tuple[str, int | None, int | None]], values: list[int]) -> dict[str, str]:
    """OpenAI-style headers from the tightest bucket of each kind."""
    headers: dict[str, str] = {}
    best_requests: tuple[int, int, int] | None = None
    best_tokens: tuple[int, int, int] | None = None
    for i, (_, rpm, tpm) in enumerate(limits):
        requests_left, requests_reset, tokens_left, tokens_reset = values[4 * i : 4 * i + 4]
        if rpm is not None and (best_requests is None or requests_left < best_requests[1]):
            best_requests = (rpm, int(requests_left), int(requests_reset))
        if tpm is not None and (best_tokens is None or tokens_left < best_tokens[1]):
            best_tokens = (tpm, int(tokens_left), int(tokens_reset))
    for unit, best in (("requests", best_requests), ("tokens", best_tokens)):
        if best is not None:
            headers[f"x-ratelimit-limit-{unit}"] = str(best[0])
            headers[f"x-ratelimit-remaining-{unit}"] = str(max(best[1], 0))
            headers[f"x-ratelimit-reset-{unit}"] = _duration(best[2])
    return headers
