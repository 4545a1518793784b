"""Serving an ASGI app with uvicorn: graceful shutdown on SIGTERM/SIGINT, our own logging."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from litestar import Litestar
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import SIGNALS

__all__ = ("serve_app", "serve_workers")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    # uvicorn drains in-flight requests, runs the lifespan shutdown, then re-raises the
    # signal it caught; ending with SystemExit(0) lets callers' `finally` blocks run.
    raise SystemExit(0)


@contextmanager
def _restoring_signal_handlers(signals: Iterable[int]) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _http_protocol() -> type[asyncio.Protocol] | str:
    """The C HTTP parser when installed (the gateway extra installs it; pure-Python h11 was
    11% of the gateway's CPU per request), sending each small response in one write."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from trivium.common.http.coalesce import CoalescingHttpToolsProtocol

    return CoalescingHttpToolsProtocol


LEAN: dict[str, Any] = {
    "http": _http_protocol(),
    "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    # Services are reached through a Kubernetes Service, not a proxy that sets headers.
    "proxy_headers": False,
    "server_header": False,
    "date_header": False,
}


def serve_app(app: Litestar, host: str, port: int, graceful_shutdown_s: float) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_shutdown_s),
        **LEAN,
    )
    previous = {sig: signal.signal(sig, _exit_after_graceful_shutdown) for sig in _STOP_SIGNALS}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, telling `on_exit` about every worker that has ended."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], on_exit: Callable[[int], None]
    ) -> None:
        super().__init__(config, sockets)
        self._on_exit = on_exit
        self._seen: set[int] = set()

    def _reap(self) -> None:
        current = {p.pid for p in self.processes if p.pid is not None}
        for pid in self._seen - current:
            self._on_exit(pid)
        self._seen = current

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._reap()

    def handle_signals(self) -> None:
        super().handle_signals()  # SIGHUP / SIGTTOU replace or retire workers
        self._reap()

    def run(self) -> None:
        super().run()
        self._reap()
        for pid in self._seen:
            self._on_exit(pid)
        self._seen = set()


def serve_workers(
    factory: str,
    host: str,
    port: int,
    workers: int,
    graceful_shutdown_s: float,
    on_worker_exit: Callable[[int], None] | None = None,
) -> None:
    """Serve one port from `workers` spawned processes, each building its app by calling
    `factory` ("module:function"); returns once SIGTERM/SIGINT has stopped them all."""
    config = uvicorn.Config(
        factory,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_shutdown_s),
        **LEAN,
    )
    with _restoring_signal_handlers(SIGNALS):  # the supervisor takes them all
        sock = config.bind_socket()
        try:
            _Supervisor(config, [sock], on_worker_exit or (lambda pid: None)).run()
        finally:
            sock.close()
