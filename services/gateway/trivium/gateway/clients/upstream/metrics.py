"""The upstream client's Prometheus series, and each client's pre-bound children."""

from __future__ import annotations

import contextlib
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

from trivium.gateway.clients.upstream.breaker import CircuitState
from trivium.gateway.clients.upstream.errors import UPSTREAM_ERROR_KINDS, UpstreamErrorKind

__all__ = (
    "CIRCUIT_STATE",
    "DURATION_SECONDS",
    "ERRORS",
    "RETRIES",
    "RETRY_REASONS",
    "RetryReason",
    "UpstreamMetrics",
)

RetryReason = Literal["connect", "rate_limited", "unavailable"]
RETRY_REASONS: tuple[RetryReason, ...] = ("connect", "rate_limited", "unavailable")

ERRORS = Counter(
    "trivium_upstream_errors_total",
    "Failed upstream attempts and circuit refusals.",
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
DURATION_SECONDS = Histogram(
    "trivium_upstream_duration_seconds",
    "Successful upstream attempts, request sent to last byte read.",
    ["upstream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)

_STATE_VALUE: dict[CircuitState, int] = {"closed": 0, "half_open": 1, "open": 2}


class UpstreamMetrics:
    """One upstream's children, bound once so that the hot path does no label lookups."""

    __slots__ = ("_circuit", "duration", "errors", "retries", "upstream")

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

    def circuit(self, state: CircuitState) -> None:
        if self._circuit is not None:
            self._circuit.set(_STATE_VALUE[state])

    def detach_circuit(self) -> None:
        """Stop reporting the circuit (a retired client; its successor owns the series)."""
        self._circuit = None

    @staticmethod
    def forget(upstream: str) -> None:
        """Drop the circuit series of an upstream no longer configured."""
        with contextlib.suppress(KeyError):
            CIRCUIT_STATE.remove(upstream)
