"""Canary rollouts end to end: two real gateway replicas on one Redis, an OpenAI-protocol
upstream per variant, short steps (a step lasts at least 2 s here).

- a canary whose upstream starts failing at its second step is rolled back within its
  guard window, no client request fails (fallback to the control serves them), and exactly
  one rollback is recorded;
- a healthy canary reaches 100% through every step, paused and resumed from the CLI on the
  way, while the replica driving it is killed: the other takes the lease over (a larger
  fencing token) and no step is taken twice.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    run_trivium,
    start_gateway,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from trivium.common.redis_server import RedisServerProcess

STEPS = [20, 50, 100]
MIN_DURATION_S = 2.0


def policy(control_url: str, canary_url: str) -> str:
    return f"""
upstreams:
  stable: {{url: "{control_url}", model: stable-model}}
  fresh: {{url: "{canary_url}", model: fresh-model}}
features:
  ask:
    route: prompt
    template: ask@production
    upstream: stable
    fallback: [control]
    variants:
      control: {{weight: 1}}
      canary:
        weight: 0
        upstream: fresh
        rollout:
          steps: {STEPS}
          min_requests: 15
          min_duration_s: {MIN_DURATION_S}
          guard_min_requests: 8
          guards:
            max_error_rate_increase: 0.02
            max_fallback_rate_increase: 0.1
            max_p95_latency_ratio: 20
"""


class Load:
    """Threads sending requests with random users to the live replicas; every status kept."""

    def __init__(self, targets: list[str], threads: int = 3) -> None:
        self.targets = list(targets)
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def drop(self, target: str) -> None:
        with self._lock:
            self.targets.remove(target)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                with self._lock:
                    target = random.choice(self.targets)
                user = f"u{random.randrange(10**9)}"
                try:
                    response = http.post(
                        f"{target}/v1/features/ask/invoke",
                        json={"input": {"question": "how are you"}, "user": user},
                    )
                except httpx.TransportError:
                    with self._lock:
                        if target not in self.targets:  # in flight to a replica being killed
                            continue
                    raise
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code != 200:
                        self.failures.append(response.text[:300])
                time.sleep(0.01)


@contextmanager
def replicas(
    tmp: Path, redis: RedisServerProcess, control: OpenAIUpstream, canary: OpenAIUpstream
) -> Iterator[list[ServiceProcess]]:
    path = tmp / "policy.yaml"
    path.write_text(policy(control.url, canary.url))
    env = trivium_env(
        tmp,
        redis.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(path),
        TRIVIUM_GATEWAY__STATS__SLOT_S="1",
        TRIVIUM_GATEWAY__STATS__WINDOW_S="60",
        TRIVIUM_GATEWAY__STATS__FLUSH_S="0.2",
        TRIVIUM_GATEWAY__ROLLOUTS__TICK_S="0.2",
        TRIVIUM_GATEWAY__ROLLOUTS__LEASE_TTL_S="1.5",
    )
    first = start_gateway(tmp, env)
    started = [first]
    try:
        with first.client() as http:
            publish_template(http, "ask", "Q: {{ question }}", ["question"], {})
        started.append(start_gateway(tmp, env))
        yield started
    finally:
        for process in started:
            process.stop()


def rollout(base_url: str) -> dict[str, Any]:
    answer = httpx.get(f"{base_url}/v1/rollouts/ask/canary", timeout=5)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def wait_for(base_url: str, timeout_s: float, what: str, **wanted: object) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = rollout(base_url)
        if all(state[key] == value for key, value in wanted.items()):
            return state
        assert time.monotonic() < deadline, f"{what}: still {state['status']} {state['step']}"
        time.sleep(0.1)


def metric_total(base_url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def entered(history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, percent) of each event that moved the rollout to a step."""
    return [
        (e["step"], e["percent"])
        for e in history
        if e["outcome"] in ("started", "advanced", "completed")
    ]


def test_a_failing_canary_is_rolled_back_and_no_request_fails(
    tmp_path: Path, redis_server: RedisServerProcess
) -> None:
    with (
        OpenAIUpstream(record=False) as control,
        OpenAIUpstream(record=False) as canary,
        replicas(tmp_path, redis_server, control, canary) as (a, b),
        Load([a.base_url, b.base_url]) as load,
    ):
        wait_for(a.base_url, 20, "second step", status="running", step=2)
        canary.fail_next(100_000, status=500)
        failing_since = time.monotonic()
        state = wait_for(a.base_url, 10, "rollback", status="rolled_back")
        took = time.monotonic() - failing_since
        served_before = sum(load.statuses.values())
        time.sleep(1.0)  # traffic after the rollback: none of it goes to the canary
        policy_view = httpx.get(f"{b.base_url}/v1/policy", timeout=5).json()
        rollbacks = sum(
            metric_total(r.base_url, "trivium_rollout_events_total", outcome="rolled_back")
            for r in (a, b)
        )

    assert took < MIN_DURATION_S + 2.0, f"rolled back {took:.1f} s after the canary failed"
    assert load.statuses, "no traffic was sent"
    assert set(load.statuses) == {200}, (load.statuses, load.failures[:3])
    assert sum(load.statuses.values()) > served_before
    outcomes = [e["outcome"] for e in state["history"]]
    assert outcomes.count("rolled_back") == 1, outcomes
    rolled = state["history"][-1]
    assert rolled["outcome"] == "rolled_back"
    assert rolled["percent"] == 0
    failed = [r for r in rolled["readings"] if r["passed"] is False]
    assert [r["guard"] for r in failed] == ["max_fallback_rate_increase"], rolled["readings"]
    assert failed[0]["value"] > 0.1
    assert "max_fallback_rate_increase" in rolled["reason"]
    weights = policy_view["effective_weights"]["ask"]
    assert weights["shares"] == {"control": 1.0, "canary": 0.0}
    assert "rolled back" in weights["why"]
    assert entered(state["history"]) == [(1, 20), (2, 50)]
    assert rollbacks == 1, "one rollback written, by one replica, over both replicas' counters"


def _pid_of(holder: str) -> int:
    match = re.fullmatch(r".*:(\d+):[0-9a-f]+", holder)
    assert match, holder
    return int(match.group(1))


def test_a_healthy_canary_reaches_100_percent_across_a_leader_kill(
    tmp_path: Path, redis_server: RedisServerProcess
) -> None:
    with (
        OpenAIUpstream(record=False) as control,
        OpenAIUpstream(record=False) as canary,
        replicas(tmp_path, redis_server, control, canary) as (a, b),
        Load([a.base_url, b.base_url]) as load,
    ):
        env = {**a.env}
        wait_for(a.base_url, 20, "first step", status="running", step=1)
        # over HTTP: the CLI's start-up could outlast the step
        paused = httpx.post(f"{b.base_url}/v1/rollouts/ask/canary/pause", timeout=5)
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "paused"
        time.sleep(MIN_DURATION_S + 1.0)
        assert rollout(a.base_url)["step"] == 1, "a paused rollout advanced"
        resumed = run_trivium(
            env, "rollouts", "resume", "ask", "canary", "--gateway", a.base_url, "--json"
        )
        assert resumed.returncode == 0, resumed.stderr
        assert '"status": "running"' in resumed.stdout
        wait_for(a.base_url, 20, "second step", status="running", step=2)

        listed = httpx.get(f"{a.base_url}/v1/rollouts", timeout=5).json()
        leader_pid, first_token = _pid_of(listed["lease"]["holder"]), listed["lease"]["token"]
        by_pid = {a.process.pid: a, b.process.pid: b}
        leader = by_pid[leader_pid]
        survivor = b if leader is a else a
        load.drop(leader.base_url)
        time.sleep(0.3)  # let requests already sent to it finish
        os.kill(leader_pid, signal.SIGKILL)
        leader.process.wait(timeout=10)

        state = wait_for(survivor.base_url, 30, "completion", status="completed")
        listed = httpx.get(f"{survivor.base_url}/v1/rollouts", timeout=5).json()
        shown = run_trivium(
            env, "rollouts", "show", "ask", "canary", "--gateway", survivor.base_url
        )

    assert set(load.statuses) == {200}, (load.statuses, load.failures[:3])
    assert entered(state["history"]) == [(1, 20), (2, 50), (3, 100)]
    assert [e["outcome"] for e in state["history"]] == [
        "started",
        "paused",
        "resumed",
        "advanced",
        "completed",
    ]
    assert _pid_of(listed["lease"]["holder"]) == survivor.process.pid
    assert listed["lease"]["token"] > first_token
    completed = state["history"][-1]
    assert completed["token"] == listed["lease"]["token"]
    assert state["effective_weights"]["shares"] == {"control": 0.0, "canary": 1.0}
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout


@pytest.mark.parametrize(
    ("block", "path", "message"),
    [
        ("{steps: [5, 50, 30]}", "features.ask.variants.canary.rollout.steps", "rise strictly"),
        (
            "{steps: [5], control: canary}",
            "features.ask.variants.canary.rollout.control",
            "not the canary itself",
        ),
        (
            "{steps: [5], guards: {p95: 2}}",
            "features.ask.variants.canary.rollout.guards.p95",
            "unknown key",
        ),
    ],
)
def test_a_bad_rollout_block_is_refused_with_its_path(
    gateway: ServiceProcess, block: str, path: str, message: str
) -> None:
    text = policy("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    text = re.sub(r"rollout:\n(.*\n)*", f"rollout: {block}\n", text)
    answer = httpx.post(
        f"{gateway.base_url}/v1/policy:validate",
        content=text,
        headers={"content-type": "application/yaml"},
        timeout=10,
    )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [e["path"] for e in errors] == [path], errors
    assert message in errors[0]["message"]
