"""Serving the gateway with uvicorn: graceful shutdown on SIGTERM/SIGINT, our own log format."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from trivium.common.logs import configure_logging
from trivium.gateway.app import create_app
from trivium.gateway.config import GatewaySettings

__all__ = ("serve",)


def _exit_after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    # uvicorn drains in-flight requests, runs the lifespan shutdown, then re-raises the
    # signal it caught; ending with SystemExit(0) lets callers' `finally` blocks run.
    raise SystemExit(0)


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings.log, service="gateway")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway.host,
        port=settings.gateway.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.gateway.graceful_shutdown_s),
    )
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, _exit_after_graceful_shutdown) for sig in stop_signals}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
