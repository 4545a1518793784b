"""A circuit breaker per dependency: stop calling one that keeps failing, probe it later.

In-process on purpose: each replica judges a dependency by its own attempts, with no shared
state. The upstream clients and the retriever client each keep one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ("CIRCUIT_STATE_VALUE", "CircuitBreaker", "CircuitOpenError", "CircuitState")

CircuitState = Literal["closed", "open", "half_open"]
CIRCUIT_STATE_VALUE: dict[CircuitState, int] = {"closed": 0, "half_open": 1, "open": 2}
"""What the `*_circuit_state` gauges report."""


class CircuitOpenError(Exception):
    """The breaker refused an attempt; `retry_after_s` is when it may admit one again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """closed -> open after `failures` consecutive failed attempts; open refuses for `open_s`;
    then half-open admits one probe at a time: its success closes, its failure reopens.

    `admit` hands out a ticket (an int), and the caller reports each admitted attempt exactly
    once with it: `succeeded` (also for answers that prove the dependency alive, such as 4xx,
    429 and a 503 "queue full"), `failed` (at the moment its deadline or read timeout passes,
    for a hang), or `release` (abandoned without a verdict: the caller went away).

    Only the verdicts of the current period count. Every state change starts a new period,
    and so does each probe, so a straggler admitted before the circuit opened (say a request
    that hung until its own deadline) cannot reopen a circuit that has since recovered, nor
    count against a fresh one. Any success closes a half-open circuit: the dependency answered.

    A probe holds the half-open slot for at most `probe_timeout_s`: a hung probe then yields
    to the next caller, which probes afresh, so a recovered dependency is readmitted within
    `open_s + probe_timeout_s` at worst, not after the hung probe's own deadline.
    """

    __slots__ = (
        "_clock",
        "_consecutive",
        "_opened_at",
        "_period",
        "_probe",
        "_probe_since",
        "_state",
        "failures",
        "name",
        "on_change",
        "open_s",
        "probe_timeout_s",
    )

    def __init__(
        self,
        failures: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        probe_timeout_s: float = float("inf"),
        name: str = "",
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.failures = failures
        self.open_s = open_s
        self.probe_timeout_s = probe_timeout_s
        self.name = name
        """Named in the refusals."""
        self.on_change = on_change
        self._clock = clock
        self._state: CircuitState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._period = 0
        self._probe: int | None = None
        """The ticket of the probe holding the half-open slot."""
        self._probe_since = 0.0

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._clock() - self._opened_at >= self.open_s:
            self._set("half_open")
        return self._state

    def admit(self) -> int:
        """Admit one attempt and return its ticket, or raise `CircuitOpenError`."""
        if self._state == "closed":
            return self._period
        state = self.state
        now = self._clock()
        if state == "open":
            remaining = self.open_s - (now - self._opened_at)
            raise CircuitOpenError("circuit open", max(remaining, 0.0))
        if self._probe is not None:
            held = now - self._probe_since
            if held < self.probe_timeout_s:
                raise CircuitOpenError(
                    "circuit half-open, probe running",
                    min(self.probe_timeout_s - held, self.open_s),
                )
        self._period += 1
        self._probe = self._period
        self._probe_since = now
        return self._period

    def succeeded(self, ticket: int) -> None:
        if self._state == "open":
            return  # a straggler admitted before the circuit opened
        self._consecutive = 0
        if self._state == "half_open":
            self._set("closed")

    def failed(self, ticket: int) -> None:
        if self._state == "closed":
            if ticket != self._period:
                return  # admitted before the circuit last closed
            self._consecutive += 1
            if self._consecutive >= self.failures:
                self._open()
        elif self._state == "half_open" and ticket == self._probe:
            self._open()

    def release(self, ticket: int) -> None:
        """An admitted attempt ended without a verdict: free the half-open slot if it held it."""
        if ticket == self._probe:
            self._probe = None

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set("open")

    def _set(self, state: CircuitState) -> None:
        self._state = state
        self._period += 1
        self._consecutive = 0
        self._probe = None
        if self.on_change is not None:
            self.on_change(state)
