"""What every attempt at one upstream passes first, and reports back to when it ends.

The circuit breaker keeps calls off an upstream that is failing; the adaptive limit keeps
calls off one that is full. Each outcome feeds them differently:

| outcome                                  | breaker  | limit     |
|------------------------------------------|----------|-----------|
| success                                  | success  | grows     |
| timeout (deadline or read timeout)       | failure  | shrinks   |
| 503, 429 (backpressure: the upstream is  | success  | shrinks   |
|   alive and asks for less)               |          |           |
| connect, other 5xx, protocol error       | failure  | unchanged |
| other 4xx (the upstream answered)        | success  | unchanged |
| abandoned (the caller went away)         | released | unchanged |

An abandoned attempt whose deadline had already passed is a timeout all the same: a hang
counts when its deadline passes, whoever noticed first.
"""

from __future__ import annotations

import time

from trivium.gateway.clients.breaker import CircuitBreaker, CircuitOpenError
from trivium.gateway.clients.upstream.errors import UpstreamError, UpstreamErrorKind
from trivium.gateway.clients.upstream.limit import AdaptiveLimit
from trivium.gateway.clients.upstream.metrics import UpstreamMetrics
from trivium.gateway.config import UpstreamClientSection

__all__ = ("Attempt", "UpstreamGate")

SHED_RETRY_AFTER_S = 1.0
"""The Retry-After of a call shed at the concurrency limit: slots free as calls end."""

_SICK: frozenset[UpstreamErrorKind] = frozenset({"connect", "timeout", "server_error", "protocol"})
_CONGESTED: frozenset[UpstreamErrorKind] = frozenset({"timeout", "backpressure", "rate_limited"})


class Attempt:
    """One admitted attempt: a breaker ticket and a concurrency slot until its verdict."""

    __slots__ = ("circuit", "deadline", "ended", "slot", "started")

    def __init__(self, circuit: int, slot: int, deadline: float) -> None:
        self.circuit = circuit
        self.slot = slot
        self.deadline = deadline
        self.started = time.monotonic()
        self.ended = False


class UpstreamGate:
    """The breaker and the adaptive limit of one upstream, and the verdicts they hear."""

    __slots__ = ("breaker", "limit", "metrics", "upstream")

    def __init__(
        self, upstream: str, options: UpstreamClientSection, metrics: UpstreamMetrics
    ) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self.breaker = CircuitBreaker(
            options.breaker_failures,
            options.breaker_open_s,
            probe_timeout_s=options.breaker_probe_timeout_s,
            name=upstream,
            on_change=metrics.circuit,
        )
        self.limit = AdaptiveLimit(
            options.concurrency_min,
            options.concurrency_initial,
            options.concurrency_max,
            options.concurrency_decrease_ratio,
            on_change=metrics.concurrency,
        )

    def admit(self, deadline: float) -> Attempt:
        """Admit one attempt, or raise `UpstreamError` of kind `timeout` (no time left),
        `circuit_open` or `overloaded` (shed: the limit's worth of calls is in flight)."""
        if deadline <= time.monotonic():
            self.metrics.errors["timeout"].inc()
            raise UpstreamError(
                self.upstream, "timeout", "deadline passed before the request was sent"
            )
        try:
            circuit = self.breaker.admit()
        except CircuitOpenError as refusal:
            self.metrics.errors["circuit_open"].inc()
            raise UpstreamError(
                self.upstream, "circuit_open", refusal.message, retry_after_s=refusal.retry_after_s
            ) from None
        slot = self.limit.acquire()
        if slot is None:
            self.breaker.release(circuit)
            self.metrics.errors["overloaded"].inc()
            raise UpstreamError(
                self.upstream,
                "overloaded",
                f"{self.limit.in_flight} calls in flight, at the upstream's adaptive "
                f"concurrency limit",
                retry_after_s=SHED_RETRY_AFTER_S,
            )
        return Attempt(circuit, slot, deadline)

    def succeeded(self, attempt: Attempt) -> None:
        if attempt.ended:
            return
        attempt.ended = True
        self.breaker.succeeded(attempt.circuit)
        self.limit.succeeded(attempt.slot)
        self.metrics.duration.observe(time.monotonic() - attempt.started)

    def failed(self, attempt: Attempt, error: UpstreamError) -> None:
        if attempt.ended:
            return
        attempt.ended = True
        kind = error.kind
        if kind in _SICK:
            self.breaker.failed(attempt.circuit)
        else:
            self.breaker.succeeded(attempt.circuit)
        if kind in _CONGESTED:
            self.limit.congested(attempt.slot)
        else:
            self.limit.release(attempt.slot)
        self.metrics.errors[kind].inc()

    def abandoned(self, attempt: Attempt) -> None:
        """The caller went away (cancelled, or closed a stream) before a verdict."""
        if attempt.ended:
            return
        if time.monotonic() >= attempt.deadline:
            self.failed(attempt, UpstreamError(self.upstream, "timeout", "deadline passed"))
            return
        attempt.ended = True
        self.breaker.release(attempt.circuit)
        self.limit.release(attempt.slot)
