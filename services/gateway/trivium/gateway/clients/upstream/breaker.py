"""A circuit breaker per upstream: stop calling an upstream that keeps failing, probe it later.

In-process on purpose: each replica judges an upstream by its own attempts, with no shared state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from trivium.gateway.clients.upstream.errors import UpstreamError

__all__ = ("CircuitBreaker", "CircuitState")

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed -> open after `failures` consecutive failed attempts; open refuses for `open_s`;
    then half-open admits one probe at a time: its success closes, its failure reopens.

    The caller reports each admitted attempt exactly once: `record_success` (also for
    answers that prove the upstream alive, such as 4xx and 429), `record_failure`, or
    `release` (abandoned without a verdict, e.g. cancelled).
    """

    __slots__ = (
        "_clock",
        "_consecutive",
        "_opened_at",
        "_probing",
        "_state",
        "failures",
        "on_change",
        "open_s",
        "upstream",
    )

    def __init__(
        self,
        failures: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        upstream: str = "",
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.failures = failures
        self.open_s = open_s
        self.upstream = upstream
        """Named in the `circuit_open` errors."""
        self.on_change = on_change
        self._clock = clock
        self._state: CircuitState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._clock() - self._opened_at >= self.open_s:
            self._set("half_open")
        return self._state

    def before_attempt(self) -> None:
        """Admit one attempt, or raise `UpstreamError(kind="circuit_open")`."""
        if self._state == "closed":
            return
        state = self.state
        if state == "open":
            remaining = self.open_s - (self._clock() - self._opened_at)
            raise UpstreamError(
                self.upstream, "circuit_open", "circuit open", retry_after_s=max(remaining, 0.0)
            )
        if self._probing:
            raise UpstreamError(self.upstream, "circuit_open", "circuit half-open, probe running")
        self._probing = True

    def record_success(self) -> None:
        self._consecutive = 0
        if self._state == "half_open":
            self._probing = False
            self._set("closed")

    def record_failure(self) -> None:
        if self._state == "open":
            return  # an attempt admitted before the circuit opened
        if self._state == "half_open":
            self._open()
            return
        self._consecutive += 1
        if self._consecutive >= self.failures:
            self._open()

    def release(self) -> None:
        """An admitted attempt ended without a verdict: free the half-open probe slot."""
        if self._state == "half_open":
            self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._consecutive = 0
        self._probing = False
        self._set("open")

    def _set(self, state: CircuitState) -> None:
        self._state = state
        if self.on_change is not None:
            self.on_change(state)
