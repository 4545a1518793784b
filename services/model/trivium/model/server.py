"""Serving the model service."""

from __future__ import annotations

from trivium.common.http.serve import serve_app
from trivium.common.logs import configure_logging
from trivium.model.app import create_app
from trivium.model.config import ModelSettings

__all__ = ("serve",)


def serve(settings: ModelSettings) -> None:
    configure_logging(settings.log, service="model")
    section = settings.model
    serve_app(create_app(settings), section.host, section.port, section.graceful_shutdown_s)
