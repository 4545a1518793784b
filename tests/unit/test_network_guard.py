"""The suite's own guard (tests/conftest.py): nothing leaves the machine."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from trivium.common.redis_server import free_tcp_port


@pytest.mark.parametrize("host", ["192.0.2.1", "10.0.0.1", "8.8.8.8", "example.com"])
def test_outside_addresses_are_refused(host: str, refused_connections: list[str]) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(RuntimeError, match="refused outside network connection"),
    ):
        sock.connect((host, 9))
    assert refused_connections[-1] == repr((host, 9))
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        pytest.raises(RuntimeError, match="refused outside network connection"),
    ):
        sock.connect_ex((host, 53))


async def test_asyncio_connections_are_guarded_too(refused_connections: list[str]) -> None:
    with pytest.raises(RuntimeError, match="refused outside network connection"):
        await asyncio.open_connection("192.0.2.1", 9)
    assert refused_connections[-1] == repr(("192.0.2.1", 9))


def test_loopback_and_unix_sockets_are_allowed(tmp_path: Path) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(ConnectionRefusedError),
    ):
        sock.connect(("127.0.0.1", free_tcp_port()))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            assert sock.connect_ex(listener.getsockname()) == 0
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            assert sock.getpeername() == path
