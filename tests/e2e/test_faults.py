"""The fault suite: the real stack under a bounded load, one fault at a time.

`trivium up` runs Redis, the model service (a tiny local GPT-2), the retriever (this
project's docs) and the gateway; an OpenAI-protocol upstream that answers "queue full" plays
an overloaded model. Two threads keep calling three features while each fault is injected:

- `docs-qa` (rag; fallback prompt, then extractive) must never fail: some road survives
  every fault below;
- `marketing-copy` (prompt, no fallback) may fail only with a clear 503/504 carrying
  Retry-After, within its deadline;
- `busy-copy` (prompt on the overloaded upstream) gets 503 with Retry-After, and the
  upstream's circuit stays closed: backpressure is not sickness.

Every killed child is restarted and counted (`trivium_supervisor_restarts_total`), and
`GET /v1/stats` never answers 500.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TRIVIUM, trivium_env
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.processes import children, eventually, metric
from trivium.cli.stack import read_live_state
from trivium.common.redis_server import free_tcp_port

BACKOFF_S = 1.0
DEADLINE_S = {"docs-qa": 8.0, "marketing-copy": 4.0, "busy-copy": 4.0}
BODIES = {
    "docs-qa": {"input": {"question": "How do I run the tests?"}, "max_tokens": 8},
    "marketing-copy": {
        "input": {"product": "a solar kettle", "audience": "campers", "tone": "playful"},
        "max_tokens": 8,
    },
    "busy-copy": {
        "input": {"product": "a tent", "audience": "hikers", "tone": "calm"},
        "max_tokens": 8,
    },
}
SLACK_S = 1.5
"""What a caller may wait past a feature's deadline: scheduling on a loaded 2-core machine."""


def policy(model_url: str, busy_url: str) -> str:
    return f"""
version: 1
upstreams:
  local-model:
    url: {model_url}/v1
    model: base
    connect_timeout_s: 0.5
    read_timeout_s: 3
  busy:
    url: {busy_url}
    model: busy-model
features:
  docs-qa:
    route: rag
    template: support-answer@production
    upstream: local-model
    retrieval: {{collection: docs, k: 2, mode: hybrid, max_passage_chars: 120}}
    limits: {{max_tokens: 8, timeout_s: {DEADLINE_S["docs-qa"]}}}
    fallback: [prompt, extractive]
  marketing-copy:
    route: prompt
    template: copy@production
    upstream: local-model
    limits: {{max_tokens: 8, timeout_s: {DEADLINE_S["marketing-copy"]}}}
  busy-copy:
    route: prompt
    template: copy@production
    upstream: busy
    limits: {{max_tokens: 8, timeout_s: {DEADLINE_S["busy-copy"]}}}
"""


@dataclass(frozen=True)
class Outcome:
    feature: str
    status: int
    seconds: float
    retry_after: str | None
    route: str | None


@dataclass
class Load:
    """Two threads calling the features in turn until stopped; every outcome is kept."""

    gateway: str
    features: tuple[str, ...]
    outcomes: list[Outcome] = field(default_factory=list)
    stats_statuses: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _worker(self, offset: int) -> None:
        with httpx.Client(base_url=self.gateway, timeout=30) as http:
            turn = offset
            while not self._stop.is_set():
                feature = self.features[turn % len(self.features)]
                turn += 1
                began = time.monotonic()
                try:
                    response = http.post(f"/v1/features/{feature}/invoke", json=BODIES[feature])
                except httpx.TransportError:
                    self.outcomes.append(Outcome(feature, 0, time.monotonic() - began, None, None))
                    continue
                route = response.json().get("route") if response.status_code == 200 else None
                self.outcomes.append(
                    Outcome(
                        feature,
                        response.status_code,
                        time.monotonic() - began,
                        response.headers.get("retry-after"),
                        route,
                    )
                )
                if turn % 5 == 0:
                    self.stats_statuses.append(http.get("/v1/stats").status_code)

    @contextmanager
    def running(self) -> Iterator[Load]:
        self.outcomes.clear()
        self._stop.clear()
        threads = [threading.Thread(target=self._worker, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30)

    def of(self, feature: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.feature == feature]


@dataclass
class Stack:
    up: subprocess.Popen[bytes]
    gateway: str
    metrics: str
    busy: OpenAIUpstream
    log: Path

    def child(self, name: str) -> int:
        (pid,) = children(self.up.pid, name)
        return pid

    def restarts(self, service: str) -> float | None:
        return metric(self.metrics, "trivium_supervisor_restarts_total", service)

    def wait_restarted(self, service: str, count: int) -> None:
        eventually(
            lambda: (
                self.restarts(service) == count
                and metric(self.metrics, "trivium_supervisor_child_up", service) == 1
            ),
            60,
            f"{service} restarted ({count})",
        )

    def last_fallback(self, feature: str) -> object:
        """Why `feature` last fell back (for a failure's message)."""
        response = httpx.post(
            f"{self.gateway}/v1/features/{feature}/invoke", json=BODIES[feature], timeout=10
        )
        return response.json().get("fallback") if response.status_code == 200 else response.text

    def wait_serving(self, feature: str) -> None:
        def ok() -> bool:
            try:
                response = httpx.post(
                    f"{self.gateway}/v1/features/{feature}/invoke", json=BODIES[feature], timeout=10
                )
            except httpx.TransportError:
                return False
            return response.status_code == 200 and response.json()["fallback"] is None

        eventually(ok, 60, f"{feature} served by its own road again")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.support.tiny_models import build_tiny_base  # loads torch

    tmp = tmp_path_factory.mktemp("faults")
    base = build_tiny_base(tmp / "tiny-base", context=2048)
    model_port, metrics_port = free_tcp_port(), free_tcp_port()
    busy = OpenAIUpstream(model="busy-model")
    busy.open()
    policy_file = tmp / "policy.yaml"
    policy_file.write_text(policy(f"http://127.0.0.1:{model_port}", busy.url))
    env = trivium_env(
        tmp / "data",
        None,
        TRIVIUM_GATEWAY__PORT=str(free_tcp_port()),
        TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
        TRIVIUM_RETRIEVER__PORT=str(free_tcp_port()),
        TRIVIUM_RETRIEVER__EMBEDDING__TORCH_THREADS="1",
        TRIVIUM_MODEL__PORT=str(model_port),
        TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR=str(base),
        TRIVIUM_MODEL__TRANSFORMERS__TORCH_THREADS="1",
        TRIVIUM_UP__DEMO_MODEL="false",
        TRIVIUM_UP__METRICS_PORT=str(metrics_port),
        TRIVIUM_UP__RESTART_INITIAL_BACKOFF_S=str(BACKOFF_S),
        TRIVIUM_UP__RESTART_MAX_BACKOFF_S=str(BACKOFF_S),
    )
    (tmp / "data").mkdir()
    log = tmp / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen([*TRIVIUM, "up"], env=env, stderr=out)
    try:

        def running() -> bool:
            assert up.poll() is None, log.read_text()[-3000:]
            state = read_live_state(tmp / "data")
            return state is not None and state.phase == "running"

        eventually(running, 180, "the stack to run")
        state = read_live_state(tmp / "data")
        assert state is not None
        assert state.supervisor_metrics is not None
        yield Stack(up, state.services["gateway"], state.supervisor_metrics, busy, log)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)
        busy.close()
    assert up.returncode == 0, log.read_text()[-3000:]


def assert_clear_failures(outcomes: list[Outcome], feature: str) -> None:
    """Each answer is a 200, or a 503/504 with Retry-After, within the feature's deadline."""
    for outcome in outcomes:
        assert outcome.seconds <= DEADLINE_S[feature] + SLACK_S, outcome
        if outcome.status != 200:
            assert outcome.status in (503, 504), outcome
            assert outcome.retry_after is not None, outcome


def test_the_stack_serves_every_feature_before_any_fault(stack: Stack) -> None:
    load = Load(stack.gateway, ("docs-qa", "marketing-copy"))
    with load.running():
        time.sleep(3)
    assert {o.status for o in load.outcomes} == {200}, load.outcomes
    assert {o.route for o in load.of("docs-qa")} == {"rag"}, stack.last_fallback("docs-qa")


def test_the_model_service_killed(stack: Stack) -> None:
    load = Load(stack.gateway, ("docs-qa", "marketing-copy"))
    before = stack.restarts("model") or 0
    with load.running():
        time.sleep(1)
        os.kill(stack.child("model serve"), signal.SIGKILL)
        time.sleep(3)
        stack.wait_restarted("model", int(before) + 1)
    docs = load.of("docs-qa")
    assert docs, "no request was made"
    assert {o.status for o in docs} == {200}, docs
    assert "extractive" in {o.route for o in docs}, "no answer came from the surviving road"
    assert_clear_failures(load.of("marketing-copy"), "marketing-copy")
    assert all(status != 500 for status in load.stats_statuses)
    stack.wait_serving("marketing-copy")


def test_the_retriever_killed(stack: Stack) -> None:
    load = Load(stack.gateway, ("docs-qa",))
    before = stack.restarts("retriever") or 0
    with load.running():
        time.sleep(1)
        os.kill(stack.child("retriever serve"), signal.SIGKILL)
        time.sleep(3)
        stack.wait_restarted("retriever", int(before) + 1)
    docs = load.of("docs-qa")
    assert docs, "no request was made"
    assert {o.status for o in docs} == {200}, docs
    assert "prompt" in {o.route for o in docs}
    stack.wait_serving("docs-qa")


def test_the_retriever_hangs(stack: Stack) -> None:
    load = Load(stack.gateway, ("docs-qa",))
    retriever = stack.child("retriever serve")
    with load.running():
        time.sleep(0.5)
        os.kill(retriever, signal.SIGSTOP)
        try:  # two callers, each retrieval waits half the 8 s deadline: 3 timeouts by ~8 s
            time.sleep(10)
        finally:
            os.kill(retriever, signal.SIGCONT)
    docs = load.of("docs-qa")
    assert docs, "no request was made"
    assert {o.status for o in docs} == {200}, docs
    hung = [o for o in docs if o.route == "prompt"]
    assert hung, "no request fell back while the retriever hung"
    # A retrieval spends at most half the deadline, so the prompt road still answers ...
    assert max(o.seconds for o in hung) < DEADLINE_S["docs-qa"], hung
    # ... and after a few timeouts the breaker opens: later requests fall back at once.
    assert min(o.seconds for o in hung) < 1.0, hung
    stack.wait_serving("docs-qa")


def test_the_model_service_hangs(stack: Stack) -> None:
    load = Load(stack.gateway, ("docs-qa", "marketing-copy"))
    model = stack.child("model serve")
    with load.running():
        time.sleep(0.5)
        os.kill(model, signal.SIGSTOP)
        try:
            time.sleep(5)
        finally:
            os.kill(model, signal.SIGCONT)
    docs = load.of("docs-qa")
    assert docs, "no request was made"
    assert {o.status for o in docs} == {200}, docs
    assert_clear_failures(docs, "docs-qa")
    assert_clear_failures(load.of("marketing-copy"), "marketing-copy")
    # A recovered upstream is admitted again through half-open probes, promptly.
    stack.wait_serving("marketing-copy")


def test_the_embedded_redis_killed(stack: Stack) -> None:
    load = Load(stack.gateway, ("docs-qa", "marketing-copy"))
    before = stack.restarts("redis") or 0
    redis_pid = int((stack.log.parent / "data" / "redis" / "redis.pid").read_text())
    with load.running():
        time.sleep(0.5)
        os.kill(redis_pid, signal.SIGKILL)
        ready = httpx.get(f"{stack.gateway}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        stack.wait_restarted("redis", int(before) + 1)
        time.sleep(1)
    assert {o.status for o in load.outcomes} == {200}, load.outcomes
    assert all(status != 500 for status in load.stats_statuses)


def test_an_upstream_that_says_queue_full_is_backpressure_not_sickness(stack: Stack) -> None:
    stack.busy.fail_next(10_000, status=503, retry_after=1, body="queue full")
    load = Load(stack.gateway, ("busy-copy",))
    try:
        with load.running():
            time.sleep(3)
    finally:
        stack.busy.reset()
    busy = load.of("busy-copy")
    assert busy, "no request was made"
    assert {o.status for o in busy} == {503}, busy
    assert_clear_failures(busy, "busy-copy")
    gateway_metrics = httpx.get(f"{stack.gateway}/metrics", timeout=5).text
    state = [
        line
        for line in gateway_metrics.splitlines()
        if line.startswith('trivium_upstream_circuit_state{upstream="busy"}')
    ]
    assert state, "no circuit state for the busy upstream"
    assert float(state[0].rsplit(" ", 1)[1]) == 0, state
    stack.wait_serving("busy-copy")
