"""Serving the gateway."""

from __future__ import annotations

from trivium.common.http.serve import serve_app
from trivium.common.logs import configure_logging
from trivium.gateway.app import create_app
from trivium.gateway.config import GatewaySettings

__all__ = ("serve",)


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings.log, service="gateway")
    section = settings.gateway
    serve_app(create_app(settings), section.host, section.port, section.graceful_shutdown_s)
