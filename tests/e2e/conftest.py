"""End-to-end fixtures: the real `trivium` processes, on free ports, over a private Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from trivium.common.redis_server import RedisServerProcess, free_tcp_port

_ENTRY_POINT = Path(sys.executable).with_name("trivium")
TRIVIUM = (
    [str(_ENTRY_POINT)] if _ENTRY_POINT.exists() else [sys.executable, "-m", "trivium.cli.main"]
)


@dataclass
class ServiceProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def trivium_env(tmp: Path, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIVIUM_")}
    env["TRIVIUM_DATA_DIR"] = str(tmp)
    env["TRIVIUM_REGISTRY__KEY_PREFIX"] = f"t{uuid.uuid4().hex[:12]}"
    if redis_url is not None:
        env["TRIVIUM_REDIS__URL"] = redis_url
    env.update(extra)
    return env


def run_trivium(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRIVIUM, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


def start_service(
    tmp: Path, command: list[str], section: str, env: dict[str, str]
) -> ServiceProcess:
    """Start `trivium <command>` on a free port and wait until /healthz answers."""
    port = free_tcp_port()
    env = {**env, f"TRIVIUM_{section}__PORT": str(port)}
    log_path = tmp / f"{section.lower()}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*TRIVIUM, *command], env=env, stdout=log, stderr=log)
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, log_path, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited at start-up:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{service.base_url}/healthz", timeout=0.5).status_code == 200:
                return service
        except httpx.TransportError:
            time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"{command} did not become healthy:\n{log_path.read_text()}")


@contextmanager
def running(service: ServiceProcess) -> Iterator[ServiceProcess]:
    """Stop `service` afterwards; when the body passed, it must also have exited cleanly."""
    try:
        yield service
    except BaseException:
        service.stop()
        raise
    assert service.stop() == 0, f"unclean exit:\n{service.log_path.read_text()[-2000:]}"


def start_gateway(tmp: Path, env: dict[str, str]) -> ServiceProcess:
    return start_service(tmp, ["gateway", "serve"], "GATEWAY", env)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    process = start_gateway(tmp, trivium_env(tmp, redis_server.url))
    yield process
    process.stop()


@pytest.fixture
def http(gateway: ServiceProcess) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client
