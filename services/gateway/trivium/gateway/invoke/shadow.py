"""Shadow runs: a copy of a request down another arm, recorded and measured, never returned.

They start after the caller has its answer and are bounded: when `max_in_flight` shadows are
already running, a new one is dropped (and counted) rather than queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.common.aio import cancel_and_wait
from trivium.gateway.invoke.schemas import InvokeResponse
from trivium.gateway.telemetry.metrics import KpiRecorder, ShadowStatus

__all__ = ("Generate", "ShadowRecord", "ShadowRunner")

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000
"""Shadow records kept per feature (approximately: Redis trims in whole nodes)."""


class ShadowRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One shadow answer beside the answer the caller got, for offline comparison."""

    request_id: str
    feature: str
    shadow: str
    status: str
    ms: float
    primary_route: str
    primary_output: str | None
    route: str | None = None
    output: str | None = None
    groundedness: float | None = None
    primary_groundedness: float | None = None
    cost_usd: float = 0.0
    error: str | None = None


Generate = Callable[[], Awaitable[InvokeResponse]]


class ShadowRunner:
    def __init__(
        self, redis: Redis, key_prefix: str, kpis: KpiRecorder, max_in_flight: int = 32
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._kpis = kpis
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    def stream_key(self, feature: str) -> str:
        return f"{self._prefix}:shadow:{feature}"

    def submit(
        self, request_id: str, feature: str, name: str, generate: Generate, primary: InvokeResponse
    ) -> bool:
        """Start one shadow run; False when it was dropped because too many are running."""
        if len(self._tasks) >= self._max_in_flight:
            self._kpis.shadow(feature, name, "dropped")
            return False
        task = asyncio.create_task(self._run(request_id, feature, name, generate, primary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(
        self, request_id: str, feature: str, name: str, generate: Generate, primary: InvokeResponse
    ) -> None:
        began = time.perf_counter()
        answer: InvokeResponse | None = None
        error: str | None = None
        status: ShadowStatus = "ok"
        try:
            answer = await generate()
        except Exception as exc:
            status, error = "error", f"{type(exc).__name__}: {exc}"
        self._kpis.shadow(feature, name, status)
        record = ShadowRecord(
            request_id=request_id,
            feature=feature,
            shadow=name,
            status=status,
            ms=round((time.perf_counter() - began) * 1000, 3),
            primary_route=primary.route,
            primary_output=primary.output,
            primary_groundedness=primary.groundedness,
            route=answer.route if answer else None,
            output=answer.output if answer else None,
            groundedness=answer.groundedness if answer else None,
            cost_usd=answer.cost_usd if answer else 0.0,
            error=error,
        )
        try:
            await self._redis.xadd(
                self.stream_key(feature),
                {"record": msgspec.json.encode(record)},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        except RedisError as exc:
            log.warning("shadow record lost", extra={"feature": feature, "error": str(exc)})

    async def drain(self, timeout_s: float) -> None:
        """Let running shadows finish (graceful shutdown); cancel what is left after timeout_s."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                await cancel_and_wait(task)
