"""The fine-tune roads through a real gateway against the REAL model service (the tiny GPT-2
and real PEFT LoRA adapters of the `tiny` fixture), a real retriever, one Redis and one
registry key prefix shared by the gateway and the model service.

How we know which adapter version served an answer: the model service labels its metrics by
adapter name only, so each gateway answer is checked against the model service asked directly
for `triage-lora@<n>` with the same messages at temperature 0 (greedy, so deterministic): the
text and the prompt-token count must be identical, and must differ from the base model's and
from the other version's, which the first test proves first.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    running,
    seed_collection,
    start_gateway,
    start_retriever,
    start_service,
    trivium_env,
)
from tests.support.prometheus import sample_value
from trivium.common.redis_server import RedisServerProcess

ADMIN = {"authorization": "Bearer model-admin"}
GPU_USD_PER_TOKEN = 3.6 / 3_600_000
MAX_TOKENS = 8
KB = [
    {
        "id": "refunds",
        "title": "Refunds",
        "source": "kb/refunds.md",
        "text": "Refunds go to billing.",
    },
    {"id": "crashes", "title": "Crashes", "source": "kb/crashes.md", "text": "Crashes are bugs."},
]
TEMPLATE_BODY = "Ticket: {{ ticket }}"
CONTEXT_HEAD = "Answer from the numbered passages below; cite them as [1], [2], ..."


def policy_yaml(model_url: str) -> str:
    price = "{gpu_hour_usd: 3.6, tokens_per_hour: 3600000}"
    return f"""
version: 1
upstreams:
  local: {{url: "{model_url}/v1", model: base, price: {price}}}
features:
  triage:
    route: finetune
    adapter: triage-lora@production
    template: triage@production
    upstream: local
    limits: {{max_tokens: {MAX_TOKENS}}}
  triage-ctx:
    route: finetune+rag
    adapter: triage-lora@production
    template: triage@production
    upstream: local
    retrieval: {{collection: kb, k: 1, mode: sparse}}
    limits: {{max_tokens: {MAX_TOKENS}}}
  triage-fallback:
    route: finetune
    adapter: missing-lora@production
    template: triage@production
    upstream: local
    fallback: [prompt]
    limits: {{max_tokens: {MAX_TOKENS}}}
  triage-dangling:
    route: finetune
    adapter: missing-lora@production
    upstream: local
    limits: {{max_tokens: {MAX_TOKENS}}}
"""


class Stack:
    def __init__(self, gateway: ServiceProcess, model: ServiceProcess) -> None:
        self.gateway = gateway
        self.model = model

    def gateway_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway.base_url, timeout=60)

    def model_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.model.base_url, timeout=60)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
) -> Iterator[Stack]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    model_tmp = tmp_path_factory.mktemp("ft-model")
    model_env = trivium_env(
        model_tmp,
        redis_server.url,
        TRIVIUM_REGISTRY__KEY_PREFIX=prefix,
        TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR=str(tiny["base"]),
        TRIVIUM_MODEL__TRANSFORMERS__TORCH_THREADS="1",
    )
    retriever_tmp = tmp_path_factory.mktemp("ft-retriever")
    gateway_tmp = tmp_path_factory.mktemp("ft-gateway")
    policy_file = gateway_tmp / "policy.yaml"
    with (
        running(start_service(model_tmp, ["model", "serve"], "MODEL", model_env)) as model,
        running(start_retriever(retriever_tmp)) as retriever,
    ):
        with model.client() as http:
            for name, path, promote in (
                ("triage-lora", tiny["adapter_a"], "production"),
                ("triage-lora", tiny["adapter_b"], None),
            ):
                registered = http.post(
                    "/v1/adapters", json={"name": name, "path": str(path), "promote": promote}
                )
                assert registered.status_code == 201, registered.text
            assert http.get("/v1/adapters").json()[0]["labels"] == {"production": 1}
        seed_collection(retriever, "kb", KB)
        policy_file.write_text(policy_yaml(model.base_url))
        gateway_env = trivium_env(
            gateway_tmp,
            redis_server.url,
            TRIVIUM_REGISTRY__KEY_PREFIX=prefix,
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__ADMIN_TOKENS='{"pm": "model-admin"}',
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
        )
        with running(start_gateway(gateway_tmp, gateway_env)) as gateway:
            with gateway.client() as http:
                publish_template(http, "triage", TEMPLATE_BODY, ["ticket"], ADMIN)
            yield Stack(gateway, model)


def invoke(stack: Stack, feature: str, **body: Any) -> httpx.Response:
    with stack.gateway_client() as http:
        return http.post(f"/v1/features/{feature}/invoke", json=body)


def direct(stack: Stack, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    """The model service asked directly, as the gateway should have asked it."""
    with stack.model_client() as http:
        response = http.post(
            "/v1/chat/completions",
            json={
                "model": model,
                "messages": messages,
                "max_tokens": MAX_TOKENS,
                "temperature": 0,
            },
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def model_requests(stack: Stack, model: str) -> float:
    with stack.model_client() as http:
        metrics = http.get("/metrics").text
    return sample_value(
        metrics, "trivium_model_requests_total", model=model, endpoint="chat", status="ok"
    )


def ticket_messages(ticket: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": TEMPLATE_BODY.replace("{{ ticket }}", ticket)}]


def test_the_upstream_model_is_the_base_name_the_model_service_serves(stack: Stack) -> None:
    with stack.model_client() as http:
        ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert ids[0] == "base"
    assert "triage-lora@1" in ids


def test_finetune_road_serves_the_exact_adapter_version(stack: Stack) -> None:
    ticket = "Refund my invoice"
    before = model_requests(stack, "triage-lora")
    response = invoke(stack, "triage", input={"ticket": ticket}, temperature=0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert model_requests(stack, "triage-lora") == before + 1  # the adapter, not the base

    assert (body["feature"], body["route"]) == ("triage", "finetune")
    assert body["adapter"] == "triage-lora@1"
    assert body["lineage"]["adapter"] == "triage-lora@1"
    assert body["lineage"]["template"] == body["template"] == "triage@1"
    assert body["lineage"]["upstream"] == "local"
    assert body["citations"] == []
    assert body["groundedness"] is None
    assert body["verdict"] is None

    messages = ticket_messages(ticket)
    v1 = direct(stack, "triage-lora@1", messages)
    v2 = direct(stack, "triage-lora@2", messages)
    base = direct(stack, "base", messages)
    # The three differ, so equality with one of them identifies what served the answer.
    texts = {
        name: answer["choices"][0]["message"]["content"]
        for name, answer in (("v1", v1), ("v2", v2), ("base", base))
    }
    assert len(set(texts.values())) == 3, texts
    assert body["output"] == texts["v1"]

    usage = body["usage"]
    assert usage == v1["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == MAX_TOKENS  # a random tiny model rarely stops early
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["finish_reason"] == v1["choices"][0]["finish_reason"]
    assert body["cost_usd"] == pytest.approx(usage["total_tokens"] * GPU_USD_PER_TOKEN)
    assert body["cost_usd"] > 0


def test_max_tokens_is_capped_by_the_feature(stack: Stack) -> None:
    body = invoke(stack, "triage", input={"ticket": "App crashes"}, max_tokens=50, temperature=0)
    assert body.status_code == 200, body.text
    assert body.json()["usage"]["completion_tokens"] == MAX_TOKENS


def test_finetune_plus_rag_cites_and_sends_the_passages_as_context(stack: Stack) -> None:
    ticket = "refunds"
    response = invoke(stack, "triage-ctx", input={"ticket": ticket}, temperature=0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["route"] == "finetune+rag"
    assert body["adapter"] == body["lineage"]["adapter"] == "triage-lora@1"
    assert [c["doc_id"] for c in body["citations"]] == ["refunds"]
    citation = body["citations"][0]
    assert citation["index"] == 1
    assert citation["source"] == "kb/refunds.md"
    assert citation["offsets"] == [0, len(KB[0]["text"])]
    assert body["lineage"]["retriever_index"]
    assert body["verdict"] == "passed"  # no floor set: every scored answer passes
    assert body["timings_ms"]["retrieve"] > 0

    # What the model service must have received: the passages as a system message first.
    context = {"role": "system", "content": f"{CONTEXT_HEAD}\n[1] {KB[0]['text']}"}
    with_context = direct(stack, "triage-lora@1", [context, *ticket_messages(ticket)])
    without = direct(stack, "triage-lora@1", ticket_messages(ticket))
    assert body["usage"] == with_context["usage"]
    assert body["usage"]["prompt_tokens"] > without["usage"]["prompt_tokens"]
    assert body["output"] == with_context["choices"][0]["message"]["content"]
    assert body["cost_usd"] == pytest.approx(body["usage"]["total_tokens"] * GPU_USD_PER_TOKEN)


def test_streaming_the_finetune_road_reports_the_version_and_real_usage(stack: Stack) -> None:
    ticket = "Password reset"
    events: list[tuple[str, dict[str, Any]]] = []
    with (
        stack.gateway_client() as http,
        http.stream(
            "POST",
            "/v1/features/triage/invoke",
            json={"input": {"ticket": ticket}, "temperature": 0, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
    assert events[-1][0] == "summary", events
    summary = events[-1][1]
    text = "".join(data["text"] for kind, data in events if kind == "delta")
    expected = direct(stack, "triage-lora@1", ticket_messages(ticket))
    assert text == summary["output"] == expected["choices"][0]["message"]["content"]
    assert summary["adapter"] == summary["lineage"]["adapter"] == "triage-lora@1"
    assert summary["usage"] == expected["usage"]


def test_an_unknown_adapter_falls_back_or_is_a_misconfiguration(stack: Stack) -> None:
    """The gateway resolves the adapter in the registry before calling anything. A dangling
    reference fails its road: with a fallback the prompt road answers (and says why), without
    one it is a 500 naming the field and the model service is never called."""
    before = model_requests(stack, "base")
    response = invoke(stack, "triage-fallback", input={"ticket": "x"}, temperature=0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["route"] == "prompt"
    assert body["adapter"] is None
    assert body["fallback"] == {"from": "finetune", "reason": "misconfigured"}
    assert model_requests(stack, "base") == before + 1
    response = invoke(stack, "triage-dangling", input={"ticket": "x"}, temperature=0)
    assert response.status_code == 500, response.text
    problem = response.json()
    assert problem["code"] == "feature_misconfigured"
    assert problem["field"] == "adapter"
    assert "missing-lora@production" in problem["detail"]
    assert model_requests(stack, "base") == before + 1


def _serving_version(stack: Stack, ticket: str, version: int) -> dict[str, Any]:
    """The gateway's answer once lineage shows `version` (label caches are invalidated by
    pub/sub, so allow up to ~2 s)."""
    deadline = time.monotonic() + 2.5
    while True:
        response = invoke(stack, "triage", input={"ticket": ticket}, temperature=0)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["lineage"]["adapter"] == f"triage-lora@{version}":
            return body
        assert time.monotonic() < deadline, f"still serving {body['lineage']['adapter']}"
        time.sleep(0.05)


def test_promoting_and_rolling_back_the_adapter_is_seen_by_the_next_requests(
    stack: Stack,
) -> None:
    ticket = "Login fails"
    messages = ticket_messages(ticket)
    assert invoke(stack, "triage", input={"ticket": ticket}, temperature=0).json()["adapter"] == (
        "triage-lora@1"
    )
    with stack.model_client() as http:
        moved = http.put(
            "/v1/adapters/triage-lora/labels/production", json={"version": 2, "expected_current": 1}
        )
        assert moved.status_code == 200, moved.text
    try:
        promoted = _serving_version(stack, ticket, 2)
        assert promoted["adapter"] == "triage-lora@2"
        expected = direct(stack, "triage-lora@2", messages)
        assert promoted["output"] == expected["choices"][0]["message"]["content"]
        assert promoted["usage"] == expected["usage"]
    finally:
        with stack.model_client() as http:
            rolled = http.post("/v1/adapters/triage-lora/labels/production/rollback", json={})
            assert rolled.status_code == 200, rolled.text
            assert rolled.json()["to_version"] == 1
    back = _serving_version(stack, ticket, 1)
    expected = direct(stack, "triage-lora@1", messages)
    assert back["output"] == expected["choices"][0]["message"]["content"]
