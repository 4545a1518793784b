"""Exact-match answers in Redis, keyed by everything that could change the answer."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.common.logs import LogThrottle
from trivium.gateway.invoke.schemas import InvokeResponse, Timings, Usage
from trivium.gateway.telemetry.metrics import KpiRecorder

__all__ = ("ResponseCache", "cache_key")

log = logging.getLogger(__name__)
LOG_INTERVAL_S = 30.0
"""While Redis is down every cached request fails its lookup: one warning per interval."""
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(InvokeResponse)


def _normalise(value: Any) -> Any:
    """Whitespace runs collapsed and ends trimmed in every string, at any depth."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def cache_key(prefix: str, parts: tuple[str, ...], request: Any) -> str:
    """`parts` name what serves the answer (feature, variant, route, template and adapter
    versions); `request` is the caller's input and settings (with the policy hash, which
    covers upstream models and retrieval settings). The retriever's index version is not in
    the key, as the lookup comes before retrieval: after a re-ingest, a cached RAG answer
    lives out its TTL."""
    digest = hashlib.sha256(msgspec.json.encode(_normalise(request), order="sorted")).hexdigest()
    return f"{prefix}:cache:{':'.join(parts)}:{digest[:32]}"


class ResponseCache:
    """Best effort: a Redis failure is a miss (or a lost store), never a failed request."""

    def __init__(self, client: Redis, max_entry_bytes: int, kpis: KpiRecorder) -> None:
        self._client = client
        self._max_entry_bytes = max_entry_bytes
        self._kpis = kpis
        self._throttle = LogThrottle(log, LOG_INTERVAL_S)

    async def lookup(
        self, feature: str, key: str, answer_id: str, started: float
    ) -> InvokeResponse | None:
        """The stored answer as this request's: its id, no cost, `cached: true`."""
        began = time.perf_counter()
        try:
            raw = await self._client.get(key)
        except RedisError as exc:
            self._throttle.warning(
                "cache-read", "response cache read failed", extra={"error": str(exc)}
            )
            self._kpis.cache(feature, "error")
            return None
        self._kpis.stage(feature, "cache", time.perf_counter() - began)
        if raw is None:
            self._kpis.cache(feature, "miss")
            return None
        self._kpis.cache(feature, "hit")
        cached = _DECODER.decode(raw)
        return msgspec.structs.replace(
            cached,
            id=answer_id,
            cached=True,
            cost_usd=0.0,
            usage=Usage(0, 0, 0),
            timings_ms=Timings(total=(time.perf_counter() - started) * 1000),
        )

    async def store(self, feature: str, key: str, response: InvokeResponse, ttl_s: int) -> None:
        """Only first-choice answers are worth repeating: not withheld, not fallen back."""
        if response.verdict == "withheld" or response.fallback is not None:
            return
        value = _ENCODER.encode(response)
        if len(value) > self._max_entry_bytes:
            return
        try:
            await self._client.set(key, value, ex=ttl_s)
        except RedisError as exc:
            self._throttle.warning(
                "cache-write", "response cache write failed", extra={"error": str(exc)}
            )
            self._kpis.cache(feature, "error")
            return
        self._kpis.cache(feature, "store")
