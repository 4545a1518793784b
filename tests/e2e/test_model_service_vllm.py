"""The model service on the vLLM engine, attached to a stand-in vLLM speaking its protocol.

vLLM itself needs a GPU; `tests/integration/fake_vllm.py` serves vLLM's HTTP protocol
(OpenAI routes, runtime LoRA endpoints) over a real socket. What this proves: the service
keeps vLLM's runtime adapters in step with the registry, also after a vLLM restart, and
relays requests under vLLM's names while callers keep theirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import ServiceProcess, start_service, trivium_env
from tests.integration.fake_vllm import FakeVllm
from tests.support.prometheus import sample_value
from tests.support.tiny_models import build_tiny_adapter, build_tiny_base
from trivium.common.redis_server import RedisServerProcess


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture(scope="module")
def fake_vllm() -> Iterator[FakeVllm]:
    fake = FakeVllm(base_model="base")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vllm-adapter")
    return build_tiny_adapter(build_tiny_base(root / "base"), root / "adapter")


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess, fake_vllm: FakeVllm
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("model-vllm")
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_MODEL__ENGINE="vllm",
        TRIVIUM_MODEL__VLLM__URL=fake_vllm.url,
        TRIVIUM_MODEL__RECONCILE_INTERVAL_S="0.5",
        TRIVIUM_MODEL__VLLM__METRICS_POLL_S="0.1",
    )
    process = start_service(tmp, ["model", "serve"], "MODEL", env)
    yield process
    process.stop()


def test_adapters_follow_the_registry_and_requests_are_relayed(
    service: ServiceProcess, fake_vllm: FakeVllm, adapter_dir: Path
) -> None:
    with service.client() as http:
        registered = http.post(
            "/v1/adapters",
            json={"name": "ticket", "path": str(adapter_dir), "promote": "production"},
        )
        assert registered.status_code == 201, registered.text
        assert eventually(lambda: "ticket@1" in fake_vllm.state.loras)
        assert fake_vllm.state.loras["ticket@1"] == registered.json()["path"]

    client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "refund please"}]
    reply = client.chat.completions.create(model="ticket", messages=messages, max_tokens=4)
    assert reply.model == "ticket"
    assert fake_vllm.state.received[-1]["body"]["model"] == "ticket@1"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4
    chunks = list(client.completions.create(model="base", prompt="x", max_tokens=3, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "Tickets are routed"
    assert {m.id for m in client.models.list().data} >= {"base", "ticket@1", "ticket"}


def test_a_restarted_vllm_gets_its_adapters_back(
    service: ServiceProcess, fake_vllm: FakeVllm, adapter_dir: Path
) -> None:
    with service.client() as http:
        http.post(
            "/v1/adapters",
            json={"name": "ticket", "path": str(adapter_dir), "promote": "production"},
        )
    assert eventually(lambda: "ticket@1" in fake_vllm.state.loras)
    fake_vllm.restart()
    assert fake_vllm.state.loras == {}
    assert eventually(lambda: "ticket@1" in fake_vllm.state.loras), "no resync after restart"


def test_unknown_model_and_bad_parameters_are_answered_before_vllm(
    service: ServiceProcess, fake_vllm: FakeVllm
) -> None:
    sent = len(fake_vllm.state.received)
    with service.client() as http:
        unknown = http.post("/v1/completions", json={"model": "nope", "prompt": "x"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "model_not_found"
        assert unknown.json()["error"]["type"] == "invalid_request_error"
        bad = http.post("/v1/completions", json={"model": "base", "prompt": "x", "temperature": 9})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "temperature"
    assert len(fake_vllm.state.received) == sent


def test_vllm_down_is_503_with_retry_after(service: ServiceProcess, fake_vllm: FakeVllm) -> None:
    fake_vllm.stop()
    try:
        with httpx.Client(base_url=service.base_url, timeout=10) as http:
            response = http.post("/v1/completions", json={"model": "base", "prompt": "x"})
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["error"]["type"] == "server_error"
    finally:
        fake_vllm.start()


def test_the_queue_depth_is_vllms_own(service: ServiceProcess, fake_vllm: FakeVllm) -> None:
    """vLLM queues requests itself; the service's queue gauge reports vLLM's waiting count."""

    def depth() -> float:
        with service.client() as http:
            return sample_value(http.get("/metrics").text, "trivium_model_queue_depth")

    try:
        fake_vllm.state.waiting = 5
        assert eventually(lambda: depth() == 5)
        fake_vllm.state.waiting = 0
        assert eventually(lambda: depth() == 0)
    finally:
        fake_vllm.state.waiting = 0
