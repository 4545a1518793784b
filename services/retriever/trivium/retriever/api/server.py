"""Serving the retriever."""

from __future__ import annotations

from trivium.common.http.serve import serve_app
from trivium.common.logs import configure_logging
from trivium.retriever.api.app import create_app
from trivium.retriever.config import RetrieverSettings

__all__ = ("serve",)


def serve(settings: RetrieverSettings) -> None:
    configure_logging(settings.log, service="retriever")
    section = settings.retriever
    serve_app(create_app(settings), section.host, section.port, section.graceful_shutdown_s)
