"""The HTTP protocol the services run: a small answer leaves in one write, streams are not
held back, keep-alive connections keep working."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import cast

import httpx
import pytest
import uvicorn
from litestar import Litestar, get
from litestar.response import Stream

from trivium.common.http.coalesce import CoalescingHttpToolsProtocol
from trivium.common.redis_server import free_tcp_port

WRITES: list[bytes] = []


class _CountingTransport(asyncio.Transport):
    """The real socket transport, recording each write it is asked for."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattribute__(self, name: str) -> object:
        if name in ("write", "_transport", "__class__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "_transport"), name)


class _CountedProtocol(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_CountingTransport(cast(asyncio.Transport, transport)))


@get("/small", sync_to_thread=False)
def small() -> dict[str, str]:
    return {"answer": "ok"}


@get("/slow-stream")
async def slow_stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        await asyncio.sleep(1.0)
        yield b"late"

    return Stream(chunks(), media_type="text/plain")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_tcp_port()
    app = Litestar([small, slow_stream], openapi_config=None, logging_config=None)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=_CountedProtocol,
        loop="uvloop",
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_small_answer_is_one_write_and_keep_alive_holds(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        for _ in range(3):
            WRITES.clear()
            response = client.get("/small")
            assert response.status_code == 200
            assert response.json() == {"answer": "ok"}
            assert len(WRITES) == 1, WRITES
            assert WRITES[0].startswith(b"HTTP/1.1 200")
            assert WRITES[0].endswith(b'{"answer":"ok"}')


def test_a_stream_gets_its_head_before_its_first_chunk(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        began = time.monotonic()
        with client.stream("GET", "/slow-stream") as response:
            headers_after = time.monotonic() - began
            assert response.status_code == 200
            body = b"".join(response.iter_bytes())
        assert body == b"late"
        assert headers_after < 0.5, f"the head waited {headers_after:.2f}s for the body"
        assert time.monotonic() - began >= 1.0
