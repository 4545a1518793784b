"""Opening the Redis connection a process uses: a configured URL or the embedded server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from trivium.common.redis_server import EmbeddedRedis
from trivium.common.settings import RedisSettings

__all__ = ("open_redis", "redis_from_url")


def redis_from_url(url: str, settings: RedisSettings) -> Redis:
    # Pooled connections that sat idle through an outage come back dead: retry each command
    # on a fresh connection a few times (about 140 ms in all) before reporting the store down.
    return Redis.from_url(
        url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 3),
        retry_on_error=[redis_errors.ConnectionError, redis_errors.TimeoutError],
    )


@asynccontextmanager
async def open_redis(settings: RedisSettings, data_dir: Path) -> AsyncIterator[Redis]:
    """Yield a client; with no URL configured, run the embedded server for the duration."""
    if settings.url is not None:
        client = redis_from_url(settings.url, settings)
        try:
            yield client
        finally:
            await client.aclose()
        return
    embedded = EmbeddedRedis(data_dir)
    await asyncio.to_thread(embedded.start)
    client = redis_from_url(embedded.url, settings)
    try:
        yield client
    finally:
        await client.aclose()
        await asyncio.to_thread(embedded.stop)
