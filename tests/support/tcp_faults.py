"""Network faults on real loopback sockets, for resilience tests.

* `SilentListener`: a listening socket nobody accepts from. The kernel completes each TCP
  handshake into the backlog and buffers what the client sends; no byte ever comes back.
  From outside, that is a server that was SIGSTOPped.
* `FaultProxy`: a TCP proxy in front of a real server, in the caller's event loop. `hang()`
  stops it forwarding in either direction (connections still open, data stays buffered:
  again a SIGSTOPped server); `resume()` forwards what was held and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

__all__ = ("FaultProxy", "SilentListener")


class SilentListener:
    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self.port: int = self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def hang(self) -> None:
        """Stop forwarding; connections stay open and what arrives is held."""
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    async def _accepted(
        self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forwarding.wait()
            server, to_server = await asyncio.open_connection("127.0.0.1", self.target_port)
            try:
                await asyncio.gather(self._pipe(client, to_server), self._pipe(server, to_client))
            finally:
                to_server.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            to_client.close()
            self._tasks.discard(task)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            await self._forwarding.wait()
            sink.write(data)
            await sink.drain()
        with contextlib.suppress(OSError):
            sink.write_eof()
