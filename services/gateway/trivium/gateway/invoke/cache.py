"""Exact-match answers in Redis, keyed by everything that could change the answer."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ("ResponseCache", "cache_key")

log = logging.getLogger(__name__)


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

    def __init__(self, client: Redis, max_entry_bytes: int) -> None:
        self._client = client
        self._max_entry_bytes = max_entry_bytes

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(key)
        except RedisError as exc:
            log.warning("response cache read failed", extra={"error": str(exc)})
            raise
        return value.encode() if isinstance(value, str) else value

    async def put(self, key: str, value: bytes, ttl_s: int) -> bool:
        if len(value) > self._max_entry_bytes:
            return False
        try:
            await self._client.set(key, value, ex=ttl_s)
        except RedisError as exc:
            log.warning("response cache write failed", extra={"error": str(exc)})
            raise
        return True
