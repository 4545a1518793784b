"""How many calls one upstream gets at once: an adaptive limit, AIMD.

Why AIMD and not a gradient limiter on observed latency: an LLM call's latency is mostly its
output length (8 tokens or 512, streamed or not), so a latency gradient would read a batch of
long answers as congestion and a burst of short ones as headroom. The signals an upstream
gives when it is full are explicit instead: 503 "queue full" and 429 with Retry-After, and
timeouts when it stalls. AIMD acts on exactly those, needs no latency baseline, and converges
to a fair share when several gateway processes call the same upstream (each runs its own).

The limit grows by 1/limit per success (one per limit's worth of successes, as TCP's
congestion avoidance does) while at least half of it is in use, and is multiplied by
`decrease_ratio` on a congestion signal, within [minimum, maximum]. One decrease per window:
a congestion signal from a call admitted before the last decrease is the same congestion,
already acted on (a burst of 50 "queue full" answers cuts the limit once, not 50 times).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ("AdaptiveLimit",)


class AdaptiveLimit:
    """`acquire` a slot (None: at the limit, shed the call), then end it exactly once with
    `succeeded`, `congested` or `release` (no verdict), passing `acquire`'s ticket."""

    __slots__ = (
        "_limit",
        "_window",
        "decrease_ratio",
        "in_flight",
        "maximum",
        "minimum",
        "on_change",
    )

    def __init__(
        self,
        minimum: int,
        initial: int,
        maximum: int,
        decrease_ratio: float,
        *,
        on_change: Callable[[int, int], None] | None = None,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        if not 0 < decrease_ratio < 1:
            raise ValueError("decrease_ratio must be between 0 and 1")
        self.minimum = minimum
        self.maximum = maximum
        self.decrease_ratio = decrease_ratio
        self.on_change = on_change
        """Called with (limit, in_flight) whenever either changes."""
        self.in_flight = 0
        self._limit = float(initial)
        self._window = 0
        if on_change is not None:
            on_change(initial, 0)

    @property
    def limit(self) -> int:
        """Calls admitted at once now."""
        return int(self._limit)

    def acquire(self) -> int | None:
        """A ticket for one more call, or None when `limit` calls are in flight already."""
        if self.in_flight >= int(self._limit):
            return None
        self.in_flight += 1
        self._report()
        return self._window

    def succeeded(self, ticket: int) -> None:
        if 2 * self.in_flight >= self._limit:  # this call still counts: the limit was in use
            self._limit = min(self._limit + 1.0 / self._limit, float(self.maximum))
        self._end()

    def congested(self, ticket: int) -> None:
        """The upstream pushed back (503, 429) or stalled past a timeout."""
        if ticket == self._window:
            self._limit = max(self._limit * self.decrease_ratio, float(self.minimum))
            self._window += 1
        self._end()

    def release(self, ticket: int) -> None:
        """The call ended without saying anything about the upstream's capacity."""
        self._end()

    def _end(self) -> None:
        self.in_flight -= 1
        self._report()

    def _report(self) -> None:
        if self.on_change is not None:
            self.on_change(int(self._limit), self.in_flight)
