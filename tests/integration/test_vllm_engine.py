"""The vLLM engine's integration code against a fake vLLM server over real HTTP on 127.0.0.1.

vLLM itself needs a GPU; `fake_vllm.py` speaks its protocol (health, model list, runtime LoRA
loading with vLLM's error answers, OpenAI completions with SSE). The process manager is tested
with real child processes that are not vLLM: the fake as a child, and stubs that crash or hang.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.integration.fake_vllm import WORDS, FakeVllm
from trivium.common.errors import InvalidInputError
from trivium.common.redis_server import free_tcp_port
from trivium.model.config import VllmSection
from trivium.model.vllm import (
    AdapterSync,
    ManagedVllm,
    UpstreamTimeoutError,
    VllmClient,
    VllmResponseError,
    VllmUnavailableError,
    rewrite_model,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def make_adapter(root: Path, name: str) -> Path:
    """A directory vLLM (and the fake) accepts as a LoRA adapter."""
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    return path


def sse_events(data: bytes) -> list[bytes]:
    assert data.endswith(b"\n\n")
    events = data[:-2].split(b"\n\n")
    assert all(event.startswith(b"data: ") for event in events), events
    return [event.removeprefix(b"data: ") for event in events]


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeVllm]:
    server = FakeVllm(**getattr(request, "param", {}))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def client(fake: FakeVllm) -> AsyncIterator[VllmClient]:
    async with VllmClient(fake.url, request_timeout_s=5, connect_timeout_s=1) as vllm:
        yield vllm


@pytest.fixture
def adapters(tmp_path: Path) -> dict[str, str]:
    return {name: str(make_adapter(tmp_path, name)) for name in ("a@1", "b@2", "c@1", "old@1")}


# -- health, model list, runtime LoRA loading -----------------------------------------------


async def test_waiting_requests_sum_over_vllms_engines(fake: FakeVllm, client: VllmClient) -> None:
    fake.state.waiting = 7
    assert await client.waiting_requests() == 7
    fake.state.waiting = 0
    assert await client.waiting_requests() == 0


async def test_health_and_the_model_list_of_a_fresh_server(client: VllmClient) -> None:
    assert await client.health()
    models = await client.list_models()
    assert models.base_ids == {"base"}
    assert models.loras == {}


@pytest.mark.parametrize("fake", [{}, {"legacy_errors": True}], indirect=True, ids=["v1", "flat"])
async def test_load_list_unload_are_idempotent(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str]
) -> None:
    assert await client.load_adapter("a@1", adapters["a@1"]) is True
    assert await client.load_adapter("a@1", adapters["a@1"]) is False  # vLLM: 400 duplicate
    base_ids, loras = await client.list_models()
    assert base_ids == {"base"}
    assert loras == {"a@1": adapters["a@1"]}
    assert await client.unload_adapter("a@1") is True
    assert await client.unload_adapter("a@1") is False  # vLLM: 404 unknown
    assert fake.state.loras == {}


async def test_a_bad_adapter_path_is_an_error(client: VllmClient, tmp_path: Path) -> None:
    with pytest.raises(VllmResponseError, match="No adapter found") as caught:
        await client.load_adapter("ghost@1", tmp_path / "missing")
    assert caught.value.upstream_status == 404
    assert caught.value.status_code == 502


@pytest.mark.parametrize("fake", [{"runtime_lora_updating": False}], indirect=True)
async def test_disabled_runtime_lora_updating_is_explained(
    client: VllmClient, adapters: dict[str, str]
) -> None:
    with pytest.raises(VllmResponseError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
        await client.load_adapter("a@1", adapters["a@1"])
    with pytest.raises(VllmResponseError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
        await client.unload_adapter("a@1")


# -- adapter sync ---------------------------------------------------------------------------


async def test_sync_loads_missing_unloads_extras_and_is_idempotent(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str]
) -> None:
    await client.load_adapter("old@1", adapters["old@1"])
    await client.load_adapter("a@1", adapters["a@1"])
    desired = {"a@1": adapters["a@1"], "b@2": adapters["b@2"]}
    sync = AdapterSync(client, max_loras=8)

    report = await sync.sync(desired)
    assert report.loaded == ("b@2",)
    assert report.unloaded == ("old@1",)
    assert report.kept == ("a@1",)
    assert report.ok
    assert report.skipped == ()
    assert fake.state.loras == desired
    assert (await client.list_models()).base_ids == {"base"}

    again = await sync.sync(desired)
    assert not again.changed
    assert again.kept == ("a@1", "b@2")
    assert sync.last_report == again


async def test_sync_keeps_at_most_max_loras_in_name_order(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str]
) -> None:
    await client.load_adapter("c@1", adapters["c@1"])
    desired = {name: adapters[name] for name in ("c@1", "b@2", "a@1")}
    report = await AdapterSync(client, max_loras=2).sync(desired)
    assert report.loaded == ("a@1", "b@2")
    assert report.unloaded == ("c@1",)
    assert report.skipped == ("c@1",)
    assert report.ok
    assert set(fake.state.loras) == {"a@1", "b@2"}


async def test_sync_reloads_an_adapter_whose_path_changed(
    fake: FakeVllm, client: VllmClient, tmp_path: Path
) -> None:
    first, second = make_adapter(tmp_path, "one"), make_adapter(tmp_path, "two")
    await client.load_adapter("a@1", first)
    report = await AdapterSync(client, max_loras=4).sync({"a@1": second})
    assert report.unloaded == ("a@1",)
    assert report.loaded == ("a@1",)
    assert fake.state.loras == {"a@1": str(second)}


async def test_sync_reports_failures_and_goes_on(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str], tmp_path: Path
) -> None:
    desired = {
        "a@1": adapters["a@1"],
        "bad@1": str(tmp_path / "not-there"),
        "base": adapters["b@2"],  # the base model's name: never touched
    }
    report = await AdapterSync(client, max_loras=8).sync(desired)
    assert report.loaded == ("a@1",)
    assert set(report.failed) == {"bad@1", "base"}
    assert "No adapter found" in report.failed["bad@1"]
    assert "base model" in report.failed["base"]
    assert not report.ok
    assert fake.state.loras == {"a@1": adapters["a@1"]}


async def run_sync(
    sync: AdapterSync,
    desired_fn: Callable[[], Any],
    interval_s: float,
    work: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Run `sync.run_forever` around `work`; it must stop promptly once asked."""
    stop = asyncio.Event()
    task = asyncio.create_task(sync.run_forever(desired_fn, interval_s, stop, retry_s=0.05))
    try:
        await work(stop)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=2)


async def test_adapters_come_back_after_a_restart_and_an_outage(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str]
) -> None:
    desired = {"a@1": adapters["a@1"], "b@2": adapters["b@2"]}
    sync = AdapterSync(client, max_loras=8)

    async def work(stop: asyncio.Event) -> None:
        await eventually(lambda: fake.state.loras == desired)
        await asyncio.to_thread(fake.restart)  # vLLM forgets runtime adapters
        assert fake.state.loras == {}
        sync.trigger.set()  # as on a registry change; the interval (60 s) is far off
        await eventually(lambda: fake.state.loras == desired)

        await asyncio.to_thread(fake.stop)
        fake.state.loras.clear()
        sync.trigger.set()
        await eventually(lambda: sync.last_error is not None)
        assert "unavailable" in (sync.last_error or "")
        await asyncio.to_thread(fake.start)  # retried with backoff, no trigger needed
        await eventually(lambda: fake.state.loras == desired)

    await run_sync(sync, lambda: desired, 60.0, work)


async def test_periodic_sync_and_a_failing_desired_fn(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str]
) -> None:
    calls = 0

    async def desired() -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("registry down")
        return {"a@1": adapters["a@1"]}

    sync = AdapterSync(client, max_loras=8)

    async def work(stop: asyncio.Event) -> None:
        await eventually(lambda: fake.state.loras == {"a@1": adapters["a@1"]})
        fake.state.loras.clear()  # nobody triggers: the 0.1 s interval finds it
        await eventually(lambda: fake.state.loras == {"a@1": adapters["a@1"]})

    await run_sync(sync, desired, 0.1, work)
    assert calls >= 3


# -- proxying -------------------------------------------------------------------------------


async def test_streaming_chat_is_relayed_chunk_by_chunk(
    fake: FakeVllm, client: VllmClient, adapters: dict[str, str]
) -> None:
    await client.load_adapter("ticket@3", adapters["a@1"])
    request = {
        "model": "ticket",
        "messages": [{"role": "user", "content": "Route this"}],
        "stream": True,
        "max_tokens": 5,
        "temperature": 0,
    }
    body = rewrite_model(msgspec.json.encode(request), "ticket@3")
    fake.state.gate = threading.Event()
    upstream = await client.forward(
        "/v1/chat/completions", body, {**JSON, "X-Request-Id": "req-7", "Connection": "x"}
    )
    assert upstream.status_code == 200
    assert upstream.is_event_stream
    assert "content-length" not in upstream.headers

    chunks = upstream.body()
    first = await anext(chunks)  # arrives while vLLM still holds the rest back
    assert first.startswith(b"data: ")
    assert not fake.state.gate.is_set()
    fake.state.gate.set()
    data = first + b"".join([chunk async for chunk in chunks])

    events = sse_events(data)
    assert events[-1] == b"[DONE]"
    payloads = [msgspec.json.decode(event) for event in events[:-1]]
    assert {p["model"] for p in payloads} == {"ticket@3"}
    assert "".join(p["choices"][0]["delta"]["content"] for p in payloads) == "".join(WORDS[:5])
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"

    received = fake.state.received[-1]
    assert received["body"] == {**request, "model": "ticket@3"}
    assert received["headers"]["x-request-id"] == "req-7"
    assert received["headers"].get("connection") != "x"


async def test_completions_with_and_without_streaming(client: VllmClient) -> None:
    body = rewrite_model(b'{"model": "base", "prompt": "Tickets", "max_tokens": 3}', "base")
    upstream = await client.forward("/v1/completions", body, JSON)
    assert upstream.status_code == 200
    answer = msgspec.json.decode(await upstream.read())
    assert answer["model"] == "base"
    assert answer["choices"][0]["text"] == "".join(WORDS[:3])

    body = b'{"model": "x", "prompt": "Tickets", "max_tokens": 3, "stream": true}'
    streamed = await client.forward("/v1/completions", rewrite_model(body, "base"), JSON)
    events = sse_events(await streamed.read())
    assert events[-1] == b"[DONE]"
    assert len(events) == 4


async def test_vllm_errors_are_relayed_not_raised(client: VllmClient) -> None:
    upstream = await client.forward(
        "/v1/chat/completions", b'{"model": "nope@1", "messages": []}', JSON
    )
    assert upstream.status_code == 404
    error = msgspec.json.decode(await upstream.read())["error"]
    assert error["message"] == "The model `nope@1` does not exist."


def test_rewrite_model_changes_only_the_model() -> None:
    body = b'{"model":"ticket","messages":[{"role":"user","content":"hi \\u00e9"}],"n":1}'
    expected = b'{"model":"t@3","messages":[{"role":"user","content":"hi \xc3\xa9"}],"n":1}'
    assert rewrite_model(body, "t@3") == expected
    assert msgspec.json.decode(rewrite_model(b'{"prompt":"x"}', "base")) == {
        "prompt": "x",
        "model": "base",
    }
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        rewrite_model(b"{nope", "base")
    with pytest.raises(InvalidInputError, match="JSON object"):
        rewrite_model(b"[1, 2]", "base")


async def test_vllm_down_is_503_with_retry_after() -> None:
    async with VllmClient(f"http://127.0.0.1:{free_tcp_port()}", connect_timeout_s=1) as vllm:
        assert not await vllm.health()
        with pytest.raises(VllmUnavailableError) as caught:
            await vllm.forward("/v1/chat/completions", b"{}", JSON)
        assert caught.value.status_code == 503
        assert caught.value.retry_after_s >= 1
        with pytest.raises(VllmUnavailableError):
            await vllm.list_models()
        with pytest.raises(VllmUnavailableError):
            await vllm.load_adapter("a@1", "/x")


async def test_a_slow_vllm_is_504(fake: FakeVllm) -> None:
    fake.state.delay_s = 5.0
    async with VllmClient(fake.url, request_timeout_s=0.3) as vllm:
        with pytest.raises(UpstreamTimeoutError) as caught:
            await vllm.forward("/v1/completions", b'{"model": "base", "prompt": "x"}', JSON)
    assert caught.value.status_code == 504


async def test_a_stream_that_stalls_is_504(fake: FakeVllm) -> None:
    fake.state.gate = threading.Event()  # never opened: the stream stops after one chunk
    body = b'{"model": "base", "prompt": "x", "stream": true}'
    async with VllmClient(fake.url, request_timeout_s=0.3) as vllm:
        upstream = await vllm.forward("/v1/completions", body, JSON)
        chunks = upstream.body()
        assert (await anext(chunks)).startswith(b"data: ")
        with pytest.raises(UpstreamTimeoutError):
            await anext(chunks)
        await upstream.aclose()


# -- the vLLM process -----------------------------------------------------------------------


def managed(
    tmp_path: Path, command: list[str], *, port: int | None = None, **settings: Any
) -> ManagedVllm:
    section = VllmSection(model="unused-by-the-stub", port=port or free_tcp_port(), **settings)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return ManagedVllm(
        section,
        "base",
        tmp_path / "logs",
        command=command,
        env=env,
        poll_interval_s=0.05,
        stop_grace_s=5,
    )


def fake_command(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.integration.fake_vllm", "--port", str(port), *args]


async def test_a_managed_child_starts_serves_and_stops(tmp_path: Path) -> None:
    port = free_tcp_port()
    process = managed(tmp_path, fake_command(port), port=port, startup_timeout_s=30)
    adapter = make_adapter(tmp_path, "a")
    async with process:
        assert process.running()
        assert process.pid is not None
        async with VllmClient(process.base_url) as vllm:
            assert await vllm.health()
            # The child got VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: the routes exist.
            assert await vllm.load_adapter("a@1", adapter) is True
    assert not process.running()
    assert process.returncode is not None
    async with VllmClient(process.base_url, connect_timeout_s=1) as vllm:
        assert not await vllm.health()
    assert "fake vLLM serving base" in process.log_path.read_text()


async def test_a_child_that_exits_at_startup_reports_its_log(tmp_path: Path) -> None:
    port = free_tcp_port()
    command = fake_command(port, "--fail-at-startup", "CUDA out of memory (simulated)")
    process = managed(tmp_path, command, port=port, startup_timeout_s=30)
    with pytest.raises(VllmUnavailableError) as caught:
        await process.start()
    message = caught.value.message
    assert "exited at start-up with status 1" in message
    assert "ERROR CUDA out of memory (simulated)" in message
    assert caught.value.status_code == 503
    assert caught.value.extra["log"] == str(process.log_path)
    assert not process.running()


async def test_a_child_that_never_gets_healthy_is_killed(tmp_path: Path) -> None:
    # Ignores SIGTERM (like a wedged CUDA init): stop() must escalate to SIGKILL.
    command = ["sh", "-c", "trap '' TERM; echo loading weights; exec sleep 60"]
    process = managed(tmp_path, command, startup_timeout_s=1)
    process.stop_grace_s = 0.3
    with pytest.raises(VllmUnavailableError, match="did not answer /health within 1s") as caught:
        await process.start()
    assert "loading weights" in caught.value.message
    assert process.returncode == -signal.SIGKILL


async def test_a_missing_vllm_executable_is_unavailable(tmp_path: Path) -> None:
    process = managed(tmp_path, [str(tmp_path / "bin" / "vllm"), "serve", "m"])
    with pytest.raises(VllmUnavailableError, match="could not start vLLM"):
        await process.start()


async def test_a_managed_process_without_a_model_is_a_settings_error(tmp_path: Path) -> None:
    process = ManagedVllm(VllmSection(), "base", tmp_path)
    with pytest.raises(InvalidInputError) as caught:
        await process.start()
    assert caught.value.field == "model.vllm.model"
    assert process.pid is None


async def test_a_port_already_served_is_refused(tmp_path: Path, fake: FakeVllm) -> None:
    process = managed(tmp_path, fake_command(fake.port), port=fake.port)
    with pytest.raises(VllmUnavailableError, match="already serves"):
        await process.start()
    assert process.pid is None


async def test_attach_waits_for_health(tmp_path: Path) -> None:
    server = FakeVllm()
    section = VllmSection(url=server.url, startup_timeout_s=10)
    process = ManagedVllm(section, "base", tmp_path, poll_interval_s=0.05)
    assert process.attached
    assert process.base_url == server.url
    waiting = asyncio.create_task(process.start())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await asyncio.to_thread(server.start)
    try:
        await asyncio.wait_for(waiting, timeout=5)
        assert process.running()
        await process.stop()  # not ours to stop
        async with VllmClient(server.url) as vllm:
            assert await vllm.health()
    finally:
        server.stop()


async def test_attach_to_nothing_times_out(tmp_path: Path) -> None:
    section = VllmSection(url=f"http://127.0.0.1:{free_tcp_port()}", startup_timeout_s=0.5)
    process = ManagedVllm(section, "base", tmp_path, poll_interval_s=0.05)
    with pytest.raises(VllmUnavailableError, match=r"did not answer /health within 0\.5s"):
        await process.start()
