"""Bounded in-flight requests: beyond the bound, answer 503 at once instead of queueing."""

from __future__ import annotations

from trivium.gateway.invoke.errors import OverloadedError
from trivium.gateway.telemetry.metrics import KpiRecorder

__all__ = ("Admission", "Admitted")


class Admission:
    """One per worker process; a single event loop makes the plain counter exact.

    `admitted()` is the only way in: the slot is released when the block exits, whether the
    request answered, failed, or (inside a stream's generator) was closed by its client.
    """

    def __init__(self, limit: int, retry_after_s: int, kpis: KpiRecorder) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.kpis = kpis
        self.in_flight = 0

    def admitted(self) -> Admitted:
        """A slot, or `OverloadedError` (503) at once; use it as `with admission.admitted():`."""
        if self.in_flight >= self.limit:
            self.kpis.overload_rejected()
            raise OverloadedError(
                f"the gateway is serving its limit of {self.limit} requests; retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self.in_flight += 1
        self.kpis.in_flight_inc()
        return Admitted(self)

    def _release(self) -> None:
        self.in_flight -= 1
        self.kpis.in_flight_dec()


class Admitted:
    """One held slot, released exactly once when its block exits (a plain class: contextlib's
    generator-based managers cost measurably on the hot path)."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        admission, self._admission = self._admission, None
        if admission is not None:
            admission._release()
