"""The model service as a client sees it: the official `openai` client against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from tests.e2e.conftest import ServiceProcess, running, start_service, trivium_env
from tests.support.prometheus import sample_value
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.model.adapters import ADAPTER_KIND
from trivium.registry import Registry


def model_env(tmp: Path, redis: RedisServerProcess, base: Path, **extra: str) -> dict[str, str]:
    return trivium_env(
        tmp,
        redis.url,
        TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR=str(base),
        TRIVIUM_MODEL__TRANSFORMERS__TORCH_THREADS="1",
        **extra,
    )


@pytest.fixture(scope="module")
def model_service(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("model")
    service = start_service(
        tmp, ["model", "serve"], "MODEL", model_env(tmp, redis_server, tiny["base"])
    )
    yield service
    service.stop()


@pytest.fixture
def client(model_service: ServiceProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{model_service.base_url}/v1", api_key="unused", max_retries=0
    ) as c:
        yield c


@pytest.fixture
def http(model_service: ServiceProcess) -> Iterator[httpx.Client]:
    with model_service.client() as c:
        yield c


def register(http: httpx.Client, name: str, path: Path, promote: str | None = None) -> Any:
    response = http.post("/v1/adapters", json={"name": name, "path": str(path), "promote": promote})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_models_lists_the_base(client: openai.OpenAI) -> None:
    assert next(m.id for m in client.models.list().data) == "base"


def test_chat_completion_with_exact_usage(client: openai.OpenAI, tiny: dict[str, Path]) -> None:
    messages: list[Any] = [{"role": "user", "content": "Where do refunds go?"}]
    reply = client.chat.completions.create(
        model="base", messages=messages, max_tokens=7, temperature=0
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False).input_ids)
    assert reply.usage.completion_tokens == 7
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 7
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.role == "assistant"


def test_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": "base",
        "prompt": "The gateway",
        "max_tokens": 12,
        "temperature": 0,
    }
    whole = client.completions.create(**kwargs)
    chunks = list(
        client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    chat_chunks = list(
        client.chat.completions.create(
            model="base",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            temperature=0,
            stream=True,
        )
    )
    assert chat_chunks[0].choices[0].delta.role == "assistant"
    assert chat_chunks[-1].choices[0].finish_reason == "length"


def test_stream_ends_with_done(http: httpx.Client) -> None:
    body = {"model": "base", "prompt": "x", "max_tokens": 3, "stream": True}
    with http.stream("POST", "/v1/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) >= 2


def test_seeded_sampling_is_reproducible(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": "base",
        "prompt": "Tickets",
        "max_tokens": 10,
        "temperature": 1.0,
        "seed": 7,
    }
    first = client.completions.create(**kwargs).choices[0].text
    assert client.completions.create(**kwargs).choices[0].text == first


def test_stop_sequence_is_honoured(client: openai.OpenAI) -> None:
    free = client.completions.create(model="base", prompt="The", max_tokens=20, temperature=0)
    text = free.choices[0].text
    stop = text[3:5] if len(text) >= 5 else None
    if stop is None or not stop.strip():
        pytest.fail(f"the tiny model produced too little text to pick a stop sequence: {text!r}")
    cut = client.completions.create(
        model="base", prompt="The", max_tokens=20, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_adapters_register_promote_serve_rollback(
    client: openai.OpenAI, http: httpx.Client, tiny: dict[str, Path]
) -> None:
    first = register(http, "triage-lora", tiny["adapter_a"], promote="production")
    assert (first["version"], first["created"]) == (1, True)
    assert register(http, "triage-lora", tiny["adapter_a"])["created"] is False
    second = register(http, "triage-lora", tiny["adapter_b"])
    assert second["version"] == 2

    kwargs: dict[str, Any] = {"prompt": "Refund my invoice", "max_tokens": 10, "temperature": 0}
    base = client.completions.create(model="base", **kwargs).choices[0].text
    v1 = client.completions.create(model="triage-lora", **kwargs).choices[0].text
    v2 = client.completions.create(model="triage-lora@2", **kwargs).choices[0].text
    assert v1 != base
    assert v2 not in (base, v1)
    assert client.completions.create(model="triage-lora@production", **kwargs).choices[0].text == v1

    moved = http.put(
        "/v1/adapters/triage-lora/labels/production", json={"version": 2, "expected_current": 1}
    )
    assert moved.status_code == 200
    assert client.completions.create(model="triage-lora", **kwargs).choices[0].text == v2
    ids = {m.id for m in client.models.list().data}
    assert {"triage-lora@2", "triage-lora", "triage-lora@production"} <= ids

    rolled = http.post("/v1/adapters/triage-lora/labels/production/rollback", json={})
    assert rolled.json()["to_version"] == 1
    assert client.completions.create(model="triage-lora", **kwargs).choices[0].text == v1

    listed = {a["name"]: a for a in http.get("/v1/adapters").json()}
    assert listed["triage-lora"]["labels"] == {"production": 1}
    unloaded = http.post("/v1/adapters/triage-lora/unload", json={"selector": "2"})
    assert unloaded.json() == {"adapter": "triage-lora@2", "loaded": False}
    assert "triage-lora@2" not in {m.id for m in client.models.list().data}
    loaded = http.post("/v1/adapters/triage-lora/load", json={"selector": "2"})
    assert loaded.json() == {"adapter": "triage-lora@2", "loaded": True}
    history = http.get("/v1/adapters/triage-lora/history").json()
    assert [e["action"] for e in history][-2:] == ["promote", "rollback"]


def test_registering_a_directory_that_is_not_an_adapter(http: httpx.Client, tmp_path: Path) -> None:
    """The path is well-formed (the schema allows any); no adapter is found there: 404."""
    for path in (tmp_path, tmp_path / "missing", tmp_path / ("x" * 300)):
        response = http.post("/v1/adapters", json={"name": "bogus", "path": str(path)})
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert "adapter_config.json" in error["message"]
        assert (error["param"], error["code"]) == ("path", "adapter_not_found")


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.completions.create(model="no-such-adapter", prompt="x", max_tokens=2)
    assert excinfo.value.body is not None
    assert excinfo.value.code == "model_not_found"
    assert excinfo.value.type == "invalid_request_error"  # as OpenAI's, and the gateway's
    assert excinfo.value.param == "model"


def test_prompt_longer_than_context_is_400_naming_the_limit(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model="base", prompt="gateway " * 400, max_tokens=5)
    assert "maximum context length is 128 tokens" in excinfo.value.message
    assert excinfo.value.code == "context_length_exceeded"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 3.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_invalid_sampling_parameters_are_400(
    http: httpx.Client, extra: dict[str, Any], param: str
) -> None:
    response = http.post("/v1/completions", json={"model": "base", "prompt": "x", **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "error" in response.json()


def test_queue_full_is_503_with_retry_after(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
) -> None:
    tmp = tmp_path_factory.mktemp("queue")
    env = model_env(
        tmp,
        redis_server,
        tiny["base"],
        TRIVIUM_MODEL__TRANSFORMERS__MAX_QUEUE="1",
        TRIVIUM_MODEL__TRANSFORMERS__MAX_BATCH_SIZE="1",
    )
    with running(start_service(tmp, ["model", "serve"], "MODEL", env)) as service:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as http:
                body = {"model": "base", "prompt": "x", "max_tokens": 100, "temperature": 0}
                return await asyncio.gather(
                    *(http.post("/v1/completions", json=body) for _ in range(6))
                )

        responses = asyncio.run(burst())
        refused = [r for r in responses if r.status_code == 503]
        assert refused, [r.status_code for r in responses]
        assert all(r.headers["retry-after"] for r in refused)
        assert refused[0].json()["error"]["code"] == "queue_full"
        assert any(r.status_code == 200 for r in responses)


def test_deadline_exceeded_is_504(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
) -> None:
    tmp = tmp_path_factory.mktemp("deadline")
    env = model_env(tmp, redis_server, tiny["base"], TRIVIUM_MODEL__REQUEST_TIMEOUT_S="0.05")
    with running(start_service(tmp, ["model", "serve"], "MODEL", env)) as service:
        with service.client() as http:
            body = {"model": "base", "prompt": "x", "max_tokens": 120, "temperature": 0}
            response = http.post("/v1/completions", json=body)
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "deadline_exceeded"


def test_client_disconnect_cancels_the_request(
    model_service: ServiceProcess, http: httpx.Client
) -> None:
    def cancelled() -> float:
        return sample_value(
            http.get("/metrics").text,
            "trivium_model_requests_total",
            endpoint="completions",
            model="base",
            status="cancelled",
        )

    before = cancelled()
    body = {"model": "base", "prompt": "x", "max_tokens": 120, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{model_service.base_url}/v1/completions", json=body, timeout=0.05)
    deadline = time.monotonic() + 5
    while cancelled() <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancelled() == before + 1


def test_metrics_measure_per_adapter(http: httpx.Client) -> None:
    metrics = http.get("/metrics").text
    assert 'trivium_model_tokens_total{kind="completion",model="base"}' in metrics
    assert "trivium_model_request_duration_seconds_bucket" in metrics
    assert "trivium_model_queue_depth" in metrics


async def test_registry_changes_from_another_process_are_reconciled(
    model_service: ServiceProcess, tiny: dict[str, Path]
) -> None:
    """A promote made elsewhere (here: this test process) loads the adapter with no request."""
    async with httpx.AsyncClient(base_url=model_service.base_url) as http:
        response = await http.post(
            "/v1/adapters", json={"name": "remote", "path": str(tiny["adapter_b"])}
        )
        version = response.json()["version"]
        settings = RegistrySettings(key_prefix=model_service.env["TRIVIUM_REGISTRY__KEY_PREFIX"])
        client = redis_from_url(model_service.env["TRIVIUM_REDIS__URL"], RedisSettings())
        try:
            registry = Registry(client, ADAPTER_KIND, settings, cache=False)
            await registry.promote("remote", "canary", version, actor="another-process")
        finally:
            await client.aclose()
        deadline = time.monotonic() + 5
        ids: set[str] = set()
        while time.monotonic() < deadline:
            ids = {m["id"] for m in (await http.get("/v1/models")).json()["data"]}
            if f"remote@{version}" in ids:
                break
            await asyncio.sleep(0.05)
        assert {f"remote@{version}", "remote@canary"} <= ids


def test_admin_tokens_guard_adapter_writes(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
) -> None:
    tmp = tmp_path_factory.mktemp("auth")
    env = model_env(tmp, redis_server, tiny["base"], TRIVIUM_MODEL__ADMIN_TOKENS='{"ops": "t0ken"}')
    with (
        running(start_service(tmp, ["model", "serve"], "MODEL", env)) as service,
        service.client() as http,
    ):
        body = {"name": "guarded", "path": str(tiny["adapter_a"])}
        refused = http.post("/v1/adapters", json=body)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "invalid_request_error"
        assert refused.json()["error"]["code"] == "unauthorized"
        assert http.post("/v1/adapters/guarded/load", json={}).status_code == 401
        accepted = http.post("/v1/adapters", json=body, headers={"authorization": "Bearer t0ken"})
        assert accepted.status_code == 201
        assert http.get("/v1/adapters/guarded/history").json()[0]["actor"] == "ops"
        completion = {"model": "base", "prompt": "x", "max_tokens": 2}
        assert http.post("/v1/completions", json=completion).status_code == 200
