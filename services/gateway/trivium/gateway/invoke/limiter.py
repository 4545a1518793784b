"""Bounded in-flight requests: beyond the bound, answer 503 at once instead of queueing."""

from __future__ import annotations

from trivium.gateway.invoke.errors import OverloadedError
from trivium.gateway.telemetry.metrics import KpiRecorder

__all__ = ("InFlightLimiter",)


class InFlightLimiter:
    """Single event loop, so a plain counter is exact; one per worker process."""

    def __init__(self, limit: int, retry_after_s: int, kpis: KpiRecorder) -> None:
        self.limit = limit
        self.kpis = kpis
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    def acquire(self) -> None:
        if self.in_flight >= self.limit:
            self.kpis.overload_rejected()
            raise OverloadedError(
                f"the gateway is serving its limit of {self.limit} requests; retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self.in_flight += 1
        self.kpis.in_flight_inc()

    def release(self) -> None:
        self.in_flight -= 1
        self.kpis.in_flight_dec()
