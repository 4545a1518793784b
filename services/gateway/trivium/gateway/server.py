"""Serving the gateway: in this process, or from `gateway.workers` processes on one port.

With several workers the parent process owns what they must share: the embedded Redis
(started once, its URL handed to every worker) and the directory of per-process metric
files behind `/metrics`. Workers rebuild the exact settings from the environment.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

import msgspec
from litestar import Litestar
from pydantic import SecretStr

from trivium.common.http.serve import serve_app, serve_workers
from trivium.common.logs import configure_logging
from trivium.common.metrics_multiprocess import mark_worker_dead, multiprocess_metrics
from trivium.common.redis_server import EmbeddedRedis
from trivium.gateway.app import create_app
from trivium.gateway.config import GatewaySettings

__all__ = ("SETTINGS_ENV", "serve", "worker_app")

SETTINGS_ENV = "TRIVIUM_GATEWAY_WORKER_SETTINGS"
"""The parent's effective settings as JSON, secrets included, for the worker processes."""


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings.log, service="gateway")
    section = settings.gateway
    if section.workers == 1:
        serve_app(create_app(settings), section.host, section.port, section.graceful_shutdown_s)
        return
    create_app(settings)  # an invalid policy fails here, once, not in every worker
    with ExitStack() as stack:
        if settings.redis.url is None:
            embedded = stack.enter_context(EmbeddedRedis(settings.data_dir))
            redis = settings.redis.model_copy(update={"url": embedded.url})
            settings = settings.model_copy(update={"redis": redis})
        run_dir = settings.data_dir.resolve() / "run"
        stack.enter_context(multiprocess_metrics(run_dir / f"prometheus-gateway-{os.getpid()}"))
        os.environ[SETTINGS_ENV] = _encode_settings(settings)
        stack.callback(os.environ.pop, SETTINGS_ENV, None)
        serve_workers(
            f"{__name__}:worker_app",
            section.host,
            section.port,
            section.workers,
            section.graceful_shutdown_s,
            on_worker_exit=mark_worker_dead,
        )


def worker_app() -> Litestar:
    """The app of one worker process (uvicorn calls this factory in each)."""
    settings = GatewaySettings.model_validate_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log, service="gateway")
    # uvicorn silenced its access log before this ran; configure_logging re-enabled it.
    logging.getLogger("uvicorn.access").propagate = False
    return create_app(settings)


def _encode_settings(settings: GatewaySettings) -> str:
    return msgspec.json.encode(settings.model_dump(), enc_hook=_reveal).decode()


def _reveal(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__} in worker settings")
