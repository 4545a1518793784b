"""Serving an ASGI app with uvicorn: graceful shutdown on SIGTERM/SIGINT, our own logging."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from litestar import Litestar

__all__ = ("serve_app",)


def _exit_after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    # uvicorn drains in-flight requests, runs the lifespan shutdown, then re-raises the
    # signal it caught; ending with SystemExit(0) lets callers' `finally` blocks run.
    raise SystemExit(0)


def serve_app(app: Litestar, host: str, port: int, graceful_shutdown_s: float) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_shutdown_s),
    )
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, _exit_after_graceful_shutdown) for sig in stop_signals}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
