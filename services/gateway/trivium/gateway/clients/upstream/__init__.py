"""Calling OpenAI-compatible upstreams: pooled clients, retries, circuit breakers and
adaptive concurrency limits."""

from __future__ import annotations

from trivium.gateway.clients.breaker import CircuitBreaker, CircuitState
from trivium.gateway.clients.upstream.client import (
    ChatResult,
    ChatUsage,
    StreamDelta,
    StreamEnd,
    UpstreamClient,
)
from trivium.gateway.clients.upstream.errors import (
    UPSTREAM_ERROR_KINDS,
    UpstreamError,
    UpstreamErrorKind,
)
from trivium.gateway.clients.upstream.limit import AdaptiveLimit
from trivium.gateway.clients.upstream.pool import UpstreamPool

__all__ = (
    "UPSTREAM_ERROR_KINDS",
    "AdaptiveLimit",
    "ChatResult",
    "ChatUsage",
    "CircuitBreaker",
    "CircuitState",
    "StreamDelta",
    "StreamEnd",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamErrorKind",
    "UpstreamPool",
)
