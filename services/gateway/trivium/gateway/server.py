"""Serving the gateway with uvicorn: graceful shutdown on SIGTERM, our own log format."""

from __future__ import annotations

import uvicorn

from trivium.common.logs import configure_logging
from trivium.gateway.app import create_app
from trivium.gateway.config import GatewaySettings

__all__ = ("serve",)


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
    uvicorn.Server(config).run()
