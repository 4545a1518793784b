"""`gateway.workers: 2`: one port, two processes, and /metrics summing over both."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.conftest import ServiceProcess, running, start_gateway, trivium_env
from tests.support.prometheus import sample_value
from trivium.common.redis_server import EmbeddedRedis

ROUTE = {"app_name": "trivium-gateway", "method": "GET", "path": "/v1/policy"}
COUNTER = "trivium_http_requests_total"


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s}s"
        time.sleep(0.1)


def send_batch(gateway: ServiceProcess, n: int) -> None:
    """`n` requests, 8 at a time, each on a new connection so either worker may accept it."""

    def one(_: int) -> int:
        return httpx.get(f"{gateway.base_url}/v1/policy", timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(n))) == {200}


def scraped(gateway: ServiceProcess) -> float:
    text = httpx.get(f"{gateway.base_url}/metrics", timeout=10).text
    return sample_value(text, COUNTER, **ROUTE, status_code="200")


def served_per_worker(metrics_dir: Path, scratch: Path) -> dict[int, float]:
    """The counter as each worker's own file has it (read with the library's collector)."""
    served: dict[int, float] = {}
    for db in metrics_dir.glob("counter_*.db"):
        one = scratch / db.stem
        one.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, one / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(one))  # type: ignore[no-untyped-call]
        text = generate_latest(registry).decode()
        served[int(db.stem.split("_")[1])] = sample_value(text, COUNTER, **ROUTE, status_code="200")
    return served


def test_two_workers_share_a_port_and_sum_their_metrics(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = trivium_env(data_dir, None, TRIVIUM_GATEWAY__WORKERS="2")  # embedded Redis
    service = start_gateway(tmp_path, env)
    metrics_dir = data_dir.resolve() / "run" / f"prometheus-gateway-{service.process.pid}"
    embedded_url = EmbeddedRedis(data_dir).url
    with running(service):
        assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None
        assert metrics_dir.is_dir()

        sent = 0
        for _ in range(5):  # until both workers have served (the kernel picks who accepts)
            send_batch(service, 40)
            sent += 40
            served = served_per_worker(metrics_dir, tmp_path / "scratch")
            if sum(1 for n in served.values() if n > 0) >= 2:
                break
        served = served_per_worker(metrics_dir, tmp_path / "scratch")
        assert len([n for n in served.values() if n > 0]) == 2, served
        assert sum(served.values()) == sent

        # Every scrape, whichever worker answers it, reports the sum over workers.
        for _ in range(6):
            assert scraped(service) == sent

        # A worker that dies is replaced; its requests still count, its live gauges go.
        victim = min(served)
        assert list(metrics_dir.glob(f"gauge_livesum_{victim}.db"))
        os.kill(victim, signal.SIGKILL)
        eventually(
            lambda: not list(metrics_dir.glob(f"gauge_live*_{victim}.db")),
            "the dead worker's live gauges being dropped",
        )
        send_batch(service, 20)
        sent += 20
        eventually(lambda: scraped(service) == sent, "the sum after a worker restart")
        assert redis.Redis.from_url(embedded_url, socket_timeout=1).ping()
        log = service.log_path.read_text()
        assert "died" in log
        assert "uvicorn.access" not in log, "workers must not log every request"

    assert service.process.returncode == 0
    assert not metrics_dir.exists(), "the multiprocess metrics dir outlived the gateway"
    assert not EmbeddedRedis(data_dir)._server.ping(), "the embedded Redis outlived the gateway"
