"""`trivium_http_*`: per route template, method and status, with pre-bound children.

Replaces Litestar's Prometheus middleware on the request path, which looked up label
children several times per request; the series and labels are the same.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

__all__ = ("HttpMetricsMiddleware",)

LABELS = ("method", "path", "status_code", "app_name")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)
EXCLUDED = frozenset({"/metrics", "/healthz", "/readyz"})

REQUESTS = Counter("trivium_http_requests_total", "HTTP requests.", LABELS)
ERRORS = Counter("trivium_http_requests_error_total", "HTTP requests answered 5xx.", LABELS)
DURATION = Histogram(
    "trivium_http_request_duration_seconds",
    "Time to the last response byte.",
    LABELS,
    buckets=BUCKETS,
)
IN_PROGRESS = Gauge(
    "trivium_http_requests_in_progress",
    "HTTP requests being served.",
    ("method", "path", "app_name"),
    multiprocess_mode="livesum",
)

_Children = tuple[Any, Any, Any]


class HttpMetricsMiddleware:
    """Litestar runs route middleware after routing, so `path_template` is known here."""

    def __init__(self, app: ASGIApp, app_name: str) -> None:
        self.app = app
        self.app_name = app_name
        self._children: dict[tuple[str, str, int], _Children] = {}
        self._in_progress: dict[tuple[str, str], Any] = {}

    def _bound(self, method: str, path: str, status: int) -> _Children:
        key = (method, path, status)
        children = self._children.get(key)
        if children is None:
            values = (method, path, str(status), self.app_name)
            children = (
                REQUESTS.labels(*values),
                DURATION.labels(*values),
                ERRORS.labels(*values) if status >= 500 else None,
            )
            self._children[key] = children
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path_template") or scope["path"]
        if scope["type"] != ScopeType.HTTP or path in EXCLUDED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        progress = self._in_progress.get((method, path))
        if progress is None:
            progress = self._in_progress[(method, path)] = IN_PROGRESS.labels(
                method, path, self.app_name
            )
        started = time.perf_counter()
        status = 500
        finished = 0.0

        async def measured_send(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = time.perf_counter()
            await send(message)

        progress.inc()
        try:
            await self.app(scope, receive, measured_send)
        finally:
            progress.dec()
            requests, duration, errors = self._bound(method, path, status)
            requests.inc()
            duration.observe((finished or time.perf_counter()) - started)
            if errors is not None:
                errors.inc()
