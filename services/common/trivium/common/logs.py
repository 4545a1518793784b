"""Structured logs: one JSON object per line, carrying the request id of the current request."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import msgspec

from trivium.common.settings import LogSettings

__all__ = ("REQUEST_ID", "JsonFormatter", "LogThrottle", "configure_logging")

REQUEST_ID: ContextVar[str | None] = ContextVar("trivium_request_id", default=None)

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}
_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """Formats records as JSON; `extra={...}` fields become top-level keys."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


def configure_logging(settings: LogSettings, service: str) -> None:
    """Route every logger (ours, uvicorn's, litestar's) through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # One INFO line per outbound request (health polls, upstream calls) drowns the service's own.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


class LogThrottle:
    """At most one log line per key per `interval_s`: a repeated failure on the request path
    (Redis down, every request) logs once, then once per interval with `suppressed`, the
    number of lines dropped since the last one written.

    `throttle.warning("stats-summary", "stats window unreadable", extra={...})`. Keys are
    the caller's (one per kind of failure, never per request). Thread-safe.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, msg: str, *, extra: dict[str, Any] | None = None) -> bool:
        """Log `msg` unless `key` logged within the interval; True when it was written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        self.logger.log(level, msg, extra={**(extra or {}), "suppressed": suppressed})
        return True

    def warning(self, key: str, msg: str, *, extra: dict[str, Any] | None = None) -> bool:
        return self.log(logging.WARNING, key, msg, extra=extra)

    def reset(self, key: str) -> int:
        """Forget `key` (its failure is over): the next line logs at once. Returns how many
        lines were suppressed since the last one written."""
        with self._lock:
            self._last.pop(key, None)
            return self._suppressed.pop(key, 0)
