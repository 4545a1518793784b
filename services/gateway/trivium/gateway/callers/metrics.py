"""Caller series: per key *name* (operator-chosen, bounded) and rejections by reason.

Never a key id, a secret or a prompt in a label: the key's name is what the operator typed
at `trivium keys create --name`.

Budgets live in Redis, so the gateway exports them for Prometheus: each key's day and month
budget and its cluster-wide spend of the current UTC period, as the limiter last read it
(`livemax` over workers; the spend only grows within a period, so the largest read is the
latest). When the UTC day or month turns, the limiter's loop zeroes that period's spend; a
key's series go when its key is revoked or rotated (its next admission writes them again).
In multiprocess mode a series cannot be removed, so it is set to 0 instead.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter, Gauge

from trivium.common.metrics_multiprocess import multiprocess_enabled

__all__ = ("CALLER_METRICS", "BudgetPeriod", "CallerMetrics", "RejectionReason")

RejectionReason = Literal[
    "unauthenticated", "forbidden_feature", "forbidden_scope", "rate_limited", "budget_exceeded"
]

REQUESTS = Counter(
    "trivium_caller_requests_total",
    "Feature requests admitted per caller key name, by outcome.",
    ["key", "status"],
)
TOKENS = Counter("trivium_caller_tokens_total", "Tokens used per caller key name.", ["key", "kind"])
COST = Counter("trivium_caller_cost_usd_total", "Cost in USD per caller key name.", ["key"])
REJECTIONS = Counter(
    "trivium_caller_rejections_total",
    "Requests refused before running, by reason.",
    ["reason"],
)
LIMITER_DEGRADED = Counter(
    "trivium_limiter_degraded_total",
    "Requests admitted by the local per-process limiter (fail_open) or refused with 503 "
    "(fail_closed) because Redis could not be reached.",
    ["policy"],
)
BUDGET = Gauge(
    "trivium_caller_budget_usd",
    "USD budget per caller key name and period (day, month: UTC), for keys that have one.",
    ["key", "period"],
    multiprocess_mode="livemax",
)
SPEND = Gauge(
    "trivium_caller_spend_usd",
    "USD spent by a caller key in the current UTC day or month, across all replicas, as this "
    "process last read it from Redis (at the key's last admission here).",
    ["key", "period"],
    multiprocess_mode="livemax",
)

BudgetPeriod = Literal["day", "month"]
_PERIODS: tuple[BudgetPeriod, BudgetPeriod] = ("day", "month")


@dataclass(slots=True)
class _Budgeted:
    """A key whose budget series this process writes: under which name, for which of its
    budgeted periods, and in which UTC day and month (`20260131`, `202601`) it read them."""

    name: str
    periods: tuple[BudgetPeriod, ...]
    current: tuple[str, str]


class CallerMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[str, str], tuple[Counter, Counter, Counter, Counter]] = {}
        self._budgeted: dict[str, _Budgeted] = {}
        self._current: tuple[str, str] | None = None
        """The periods every entry was read in or rolled to (None: some entry may be older)."""
        self._rejections = {
            reason: REJECTIONS.labels(reason=reason)
            for reason in (
                "unauthenticated",
                "forbidden_feature",
                "forbidden_scope",
                "rate_limited",
                "budget_exceeded",
            )
        }
        for policy in ("fail_open", "fail_closed"):  # 0 until Redis first goes away
            LIMITER_DEGRADED.labels(policy=policy)

    def rejected(self, reason: RejectionReason) -> None:
        self._rejections[reason].inc()

    def served(self, key: str, status: str, prompt: int, completion: int, cost: float) -> None:
        children = self._children.get((key, status))
        if children is None:
            if len(self._children) >= 10_000:  # bounded even if names churn
                self._children.clear()
            children = self._children[(key, status)] = (
                REQUESTS.labels(key=key, status=status),
                TOKENS.labels(key=key, kind="prompt"),
                TOKENS.labels(key=key, kind="completion"),
                COST.labels(key=key),
            )
        requests, prompt_tokens, completion_tokens, cost_usd = children
        requests.inc()
        if prompt:
            prompt_tokens.inc(prompt)
        if completion:
            completion_tokens.inc(completion)
        if cost:
            cost_usd.inc(cost)

    def degraded(self, policy: Literal["fail_open", "fail_closed"]) -> None:
        LIMITER_DEGRADED.labels(policy=policy).inc()

    def spend(
        self,
        key_id: str,
        name: str,
        current: tuple[str, str],
        budgets: tuple[float | None, float | None],
        spent_micro_usd: tuple[int, int],
    ) -> None:
        """A key's day and month budgets, and its spend in those UTC periods (`current`: the
        day's and month's names) as the limiter just read it."""
        periods = tuple(p for p, b in zip(_PERIODS, budgets, strict=True) if b is not None)
        self._budgeted[key_id] = _Budgeted(name, periods, current)
        if current != self._current:
            self._current = None
        for period, budget, spent in zip(_PERIODS, budgets, spent_micro_usd, strict=True):
            if budget is not None:
                BUDGET.labels(name, period).set(budget)
                SPEND.labels(name, period).set(spent / 1_000_000)

    def roll_periods(self, current: tuple[str, str]) -> None:
        """The UTC day or month turned: spend read in an earlier one reads 0 until the key's
        next admission reads the new period's. Called often: a no-op unless something
        changed."""
        if current == self._current:
            return
        self._current = current
        for entry in self._budgeted.values():
            if entry.current == current:
                continue
            for i, period in enumerate(_PERIODS):
                if entry.current[i] != current[i] and period in entry.periods:
                    SPEND.labels(entry.name, period).set(0)
            entry.current = current

    def forget(self, key_id: str) -> None:
        """A key changed (revoked, rotated): its budget series go until its next admission."""
        entry = self._budgeted.pop(key_id, None)
        if entry is None or any(e.name == entry.name for e in self._budgeted.values()):
            return  # a new key already took the name: the series are its own
        for period in entry.periods:
            for gauge in (BUDGET, SPEND):
                if multiprocess_enabled():  # a worker's metric file cannot forget a series
                    gauge.labels(entry.name, period).set(0)
                else:
                    with contextlib.suppress(KeyError):
                        gauge.remove(entry.name, period)


CALLER_METRICS = CallerMetrics()
