"""`trivium up` stays up when a part falls: real processes killed with SIGKILL, restarted
with backoff and counted; the embedded Redis restarted from its append-only file with no
zombie left; the gateway degraded (not unready) while Redis is down, and 503 only when cold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TRIVIUM, trivium_env
from tests.support.processes import children, eventually, is_zombie_or_gone, metric
from trivium.cli.stack import StackState, read_live_state
from trivium.common.redis_server import EmbeddedRedis, free_tcp_port

BACKOFF_S = 3.0


def supervisor_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log.read_text().splitlines():
        if raw.startswith("{"):
            entry = json.loads(raw)
            if entry.get("logger") == "trivium.supervisor":
                lines.append(entry)
    return lines


@contextmanager
def running_up(
    tmp_path: Path,
) -> Iterator[tuple[subprocess.Popen[bytes], StackState, Path, dict[str, str]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = trivium_env(
        tmp_path,
        None,
        TRIVIUM_GATEWAY__PORT=str(free_tcp_port()),
        TRIVIUM_UP__METRICS_PORT=str(free_tcp_port()),
        TRIVIUM_UP__RESTART_INITIAL_BACKOFF_S=str(BACKOFF_S),
        TRIVIUM_UP__RESTART_MAX_BACKOFF_S=str(BACKOFF_S),
        TRIVIUM_UP__START_TIMEOUT_S="60",
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*TRIVIUM, "up", "--skip-model", "--skip-retriever"], env=env, stderr=out
        )
    try:

        def running() -> StackState | None:
            assert process.poll() is None, log.read_text()
            state = read_live_state(tmp_path)
            return state if state is not None and state.phase == "running" else None

        yield process, eventually(running, 60, "the stack to run"), log, env
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert read_live_state(tmp_path) is None, "stack.json outlived the stack"
    assert not EmbeddedRedis(tmp_path).running(), "up left the embedded Redis running"


def test_up_restarts_what_dies_and_serves_degraded_meanwhile(tmp_path: Path) -> None:
    with running_up(tmp_path) as (up, stack, log, _):
        gateway = httpx.Client(base_url=stack.services["gateway"], timeout=10)
        metrics = stack.supervisor_metrics
        assert metrics is not None
        assert metric(metrics, "trivium_supervisor_restarts_total", "gateway") == 0
        kept = gateway.post(
            "/v1/templates/kept/versions",
            json={"body": "Q: {{ q }}", "metadata": {"variables": ["q"]}},
        )
        assert kept.status_code == 201, kept.text
        # Warm the gateway's cache with one template of the demo policy.
        assert gateway.get("/v1/templates/copy/labels/production").status_code == 200

        # 1. The gateway is killed: restarted after the backoff, counted, logged.
        (old_gateway,) = children(up.pid, "gateway serve")
        os.kill(old_gateway, signal.SIGKILL)
        eventually(
            lambda: (
                metric(metrics, "trivium_supervisor_restarts_total", "gateway") == 1
                and metric(metrics, "trivium_supervisor_child_up", "gateway") == 1
            ),
            BACKOFF_S + 30,
            "the gateway's restart",
        )
        assert children(up.pid, "gateway serve") != [old_gateway]
        assert is_zombie_or_gone(old_gateway) == "gone"
        exited = [e for e in supervisor_lines(log) if e["msg"].startswith("gateway exited")]
        assert exited[0]["child"] == "gateway"
        assert exited[0]["exit_status"] == -9
        assert exited[0]["signal"] == "SIGKILL"
        assert (exited[0]["restart"], exited[0]["backoff_s"]) == (1, BACKOFF_S)
        assert gateway.get("/v1/templates/copy/labels/production").status_code == 200

        # 2. Redis is killed: the gateway serves from its cache and says it is degraded;
        #    /v1/stats is a clear 503; Redis comes back from its append-only file.
        redis_pid = int((tmp_path / "redis" / "redis.pid").read_text())
        os.kill(redis_pid, signal.SIGKILL)
        started = time.monotonic()

        def store_down() -> httpx.Response | None:
            answer = gateway.get("/readyz")
            return answer if answer.json()["checks"]["registry_store"] is False else None

        ready = eventually(store_down, BACKOFF_S, "the gateway to see Redis down")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "registry_store" in ready.json()["failing"]
        assert "copy@production" in ready.json()["cache"]["templates_cached"]
        assert gateway.get("/healthz").status_code == 200
        stats = gateway.get("/v1/stats")
        assert stats.status_code == 503
        assert stats.headers["retry-after"] == "2"
        assert stats.json()["dependency"] == "redis"
        assert time.monotonic() - started < BACKOFF_S, "checked after Redis was back: too slow"
        eventually(
            lambda: (
                metric(metrics, "trivium_supervisor_restarts_total", "redis") == 1
                and metric(metrics, "trivium_supervisor_child_up", "redis") == 1
            ),
            BACKOFF_S + 30,
            "the Redis restart",
        )
        assert is_zombie_or_gone(redis_pid) == "gone", "the killed Redis was not reaped"
        assert eventually(
            lambda: gateway.get("/readyz").json()["status"] == "ready", 20, "readiness back"
        )
        assert gateway.get("/v1/templates/kept/versions/1").json()["body"] == "Q: {{ q }}"
        assert gateway.get("/v1/stats").status_code == 200

        # 3. A replica that starts while Redis hangs has nothing cached: unready (503),
        #    yet alive (/healthz), so a liveness probe leaves it be; ready once Redis answers.
        redis_pid = int((tmp_path / "redis" / "redis.pid").read_text())
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            (old_gateway,) = children(up.pid, "gateway serve")
            os.kill(old_gateway, signal.SIGKILL)
            eventually(
                lambda: (
                    metric(metrics, "trivium_supervisor_restarts_total", "gateway") == 2
                    and metric(metrics, "trivium_supervisor_child_up", "gateway") == 1
                ),
                BACKOFF_S + 30,
                "the gateway's second restart",
            )
            cold = gateway.get("/readyz")
            assert cold.status_code == 503, cold.text
            assert cold.headers["retry-after"] == "2"
            assert cold.json()["status"] == "unavailable"
            assert "copy@production" in cold.json()["cache"]["templates_missing"]
            assert gateway.get("/healthz").status_code == 200
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        assert eventually(
            lambda: gateway.get("/readyz").json()["status"] == "ready", 20, "readiness back"
        )
        gateway.close()


@pytest.mark.parametrize("where", ["sub", "elsewhere"])
def test_registry_commands_find_the_running_stack_or_say_they_do_not(
    tmp_path: Path, where: str
) -> None:
    repo = tmp_path / "repo"
    data_dir = repo / "var"
    with running_up(data_dir) as (_, stack, _, up_env):
        # The user's environment: no data directory; the stack's key prefix (its config).
        env = {k: v for k, v in up_env.items() if k != "TRIVIUM_DATA_DIR"}
        cwd = repo / "services" if where == "sub" else tmp_path / "elsewhere"
        cwd.mkdir(parents=True)
        shown = subprocess.run(
            [*TRIVIUM, "templates", "show"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        if where == "sub":
            assert f"using the stack `trivium up` runs from {data_dir}" in shown.stderr
            assert "copy" in shown.stdout  # the stack's demo templates
        else:
            assert "starting a fresh embedded Redis" in shown.stderr
            assert "--data-dir" in shown.stderr
            assert "copy" not in shown.stdout
            explicit = subprocess.run(
                [*TRIVIUM, "--data-dir", str(data_dir), "templates", "show"],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert explicit.returncode == 0, explicit.stderr
            assert "copy" in explicit.stdout
            assert explicit.stderr == ""
        assert stack.redis_url.startswith("unix://")
