"""The upstream client's Prometheus series, and each client's pre-bound children."""

from __future__ import annotations

import contextlib
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

from trivium.gateway.clients.breaker import CIRCUIT_STATE_VALUE, CircuitState
from trivium.gateway.clients.upstream.errors import UPSTREAM_ERROR_KINDS, UpstreamErrorKind

__all__ = (
    "CIRCUIT_STATE",
    "CONCURRENCY_LIMIT",
    "DURATION_SECONDS",
    "ERRORS",
    "IN_FLIGHT",
    "RETRIES",
    "RETRY_REASONS",
    "RetryReason",
    "UpstreamMetrics",
)

RetryReason = Literal["connect", "rate_limited", "unavailable"]
RETRY_REASONS: tuple[RetryReason, ...] = ("connect", "rate_limited", "unavailable")

ERRORS = Counter(
    "trivium_upstream_errors_total",
    "Failed upstream attempts, circuit refusals (circuit_open) and calls shed (overloaded).",
    ["upstream", "kind"],
)
RETRIES = Counter(
    "trivium_upstream_retries_total",
    "Upstream attempts retried.",
    ["upstream", "reason"],  # connect, rate_limited (429), unavailable (502/503)
)
CIRCUIT_STATE = Gauge(
    "trivium_upstream_circuit_state",
    "Each upstream's circuit: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
    multiprocess_mode="livemax",
)
CONCURRENCY_LIMIT = Gauge(
    "trivium_upstream_concurrency_limit",
    "Calls each upstream is given at once now (adaptive, AIMD); summed over processes.",
    ["upstream"],
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    "trivium_upstream_in_flight",
    "Calls in flight to each upstream; summed over processes.",
    ["upstream"],
    multiprocess_mode="livesum",
)
DURATION_SECONDS = Histogram(
    "trivium_upstream_duration_seconds",
    "Successful upstream attempts, request sent to last byte read.",
    ["upstream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)

_PER_UPSTREAM_GAUGES = (CIRCUIT_STATE, CONCURRENCY_LIMIT, IN_FLIGHT)


class UpstreamMetrics:
    """One upstream's children, bound once so that the hot path does no label lookups."""

    __slots__ = (
        "_circuit",
        "_in_flight",
        "_limit",
        "_limit_shown",
        "duration",
        "errors",
        "retries",
        "upstream",
    )

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.errors: dict[UpstreamErrorKind, Counter] = {
            kind: ERRORS.labels(upstream, kind) for kind in UPSTREAM_ERROR_KINDS
        }
        self.retries: dict[RetryReason, Counter] = {
            reason: RETRIES.labels(upstream, reason) for reason in RETRY_REASONS
        }
        self.duration = DURATION_SECONDS.labels(upstream)
        self._circuit: Gauge | None = CIRCUIT_STATE.labels(upstream)
        self._circuit.set(0)
        self._limit: Gauge | None = CONCURRENCY_LIMIT.labels(upstream)
        self._in_flight: Gauge | None = IN_FLIGHT.labels(upstream)
        self._limit_shown = -1

    def circuit(self, state: CircuitState) -> None:
        if self._circuit is not None:
            self._circuit.set(CIRCUIT_STATE_VALUE[state])

    def concurrency(self, limit: int, in_flight: int) -> None:
        if self._limit is None or self._in_flight is None:
            return
        self._in_flight.set(in_flight)
        if limit != self._limit_shown:  # the limit moves far less often than calls come
            self._limit.set(limit)
            self._limit_shown = limit

    def detach_gauges(self) -> None:
        """Stop reporting state (a retired client; its successor owns the series)."""
        self._circuit = self._limit = self._in_flight = None

    @staticmethod
    def forget(upstream: str) -> None:
        """Drop the state series of an upstream no longer configured."""
        for gauge in _PER_UPSTREAM_GAUGES:
            with contextlib.suppress(KeyError):
                gauge.remove(upstream)
