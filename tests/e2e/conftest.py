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
from typing import Any

import httpx
import pytest

from tests.support.paths import ONNX_CACHE
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
    # Tests of other things run the gateway without caller keys (loopback only); the auth
    # tests (test_gateway_auth.py) set TRIVIUM_GATEWAY__AUTH__MODE=keys.
    env["TRIVIUM_GATEWAY__AUTH__MODE"] = "open"
    # Every retriever a test starts shares one ONNX export (about 10 s of CPU each otherwise).
    env["TRIVIUM_RETRIEVER__ONNX_CACHE_DIR"] = str(ONNX_CACHE)
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


def retriever_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A retriever on the embedded store, tuned for tests: quick optimize, one torch thread."""
    return trivium_env(
        tmp,
        None,
        TRIVIUM_RETRIEVER__STORE__OPTIMIZE_AFTER_S="0.2",
        TRIVIUM_RETRIEVER__EMBEDDING__TORCH_THREADS="1",
        **extra,
    )


def start_retriever(tmp: Path, env: dict[str, str] | None = None) -> ServiceProcess:
    return start_service(tmp, ["retriever", "serve"], "RETRIEVER", env or retriever_env(tmp))


def seed_collection(retriever: ServiceProcess, name: str, documents: list[dict[str, Any]]) -> None:
    """Create `name` and ingest `documents` into it."""
    with retriever.client() as http:
        created = http.post("/v1/collections", json={"name": name})
        assert created.status_code == 201, created.text
        ingest = http.post(f"/v1/collections/{name}/documents", json={"documents": documents})
        assert ingest.status_code == 200, ingest.text


def publish_template(
    http: httpx.Client,
    name: str,
    body: str,
    variables: list[str],
    headers: dict[str, str],
    label: str = "production",
) -> int:
    """Publish a template version and point `label` at it; returns the version."""
    published = http.post(
        f"/v1/templates/{name}/versions",
        json={"body": body, "metadata": {"variables": variables}},
        headers=headers,
    )
    assert published.status_code in (200, 201), published.text
    version: int = published.json()["version"]
    promoted = http.put(
        f"/v1/templates/{name}/labels/{label}", json={"version": version}, headers=headers
    )
    assert promoted.status_code == 200, promoted.text
    return version
