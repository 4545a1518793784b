"""Feature requests through a real gateway process: every road but the fine-tune ones (those
run against the real model service in test_gateway_model.py), against a real retriever and
OpenAI-protocol upstreams on real sockets (tests/support/openai_upstream.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    running,
    seed_collection,
    start_gateway,
    start_retriever,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.otlp_receiver import Received, exported_spans, otlp_receiver
from tests.support.prometheus import sample_value
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

ADMIN = {"authorization": "Bearer invoke-admin"}
KB = [
    {
        "id": "refunds",
        "title": "Refunds",
        "source": "kb/refunds.md",
        "text": "Refunds reach the original card within five business days.",
    },
    {
        "id": "reset",
        "title": "Password reset",
        "source": "kb/reset.md",
        "text": "Reset a forgotten password from the login page with the emailed link.",
    },
    {
        "id": "export",
        "title": "Exports",
        "source": "kb/export.md",
        "text": "Admins export invoices as CSV from the billing settings page.",
    },
]
TEMPLATES = {
    "copy": ("Write copy for {{ product }}.", ["product"]),
    "ask": ("Question: {{ question }}", ["question"]),
    "answer": (
        "Passages:\n{% for p in passages %}[{{ p.index }}] {{ p.text }}\n{% endfor %}"
        "Question: {{ question }}",
        ["passages", "question"],
    ),
}


def policy_yaml(hosted: str, backup: str, dead: str, slow: str, flip_route: str = "prompt") -> str:
    return f"""
version: 1
upstreams:
  hosted:
    url: "{hosted}"
    model: hosted-model
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
  backup:
    url: "{backup}"
    model: backup-model
    price: {{gpu_hour_usd: 3.6, tokens_per_hour: 3600000}}
  dead: {{url: "{dead}", model: gone, connect_timeout_s: 0.5}}
  gone: {{url: "{dead}", model: gone-too, connect_timeout_s: 0.5}}
  vanished: {{url: "{dead}", model: gone-three, connect_timeout_s: 0.5}}
  slow: {{url: "{slow}", model: slow-model}}
features:
  copy:
    route: prompt
    template: copy@production
    upstream: hosted
    limits: {{max_input_chars: 200, max_tokens: 40, timeout_s: 5}}
  ask:
    route: prompt
    template: ask@production
    upstream: hosted
  kb:
    route: rag
    template: answer@production
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: hybrid, min_groundedness: 0.5, on_fail: flag}}
  kb-strict:
    route: rag+prompt
    template: ask@production
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: dense, min_groundedness: 0.5, on_fail: withhold}}
  kb-short:
    route: rag
    template: answer@production
    upstream: hosted
    temperature: 0.3
    retrieval: {{collection: kb, k: 1, mode: sparse, max_passage_chars: 20}}
  kb-missing:
    route: rag
    template: answer@production
    upstream: hosted
    retrieval: {{collection: no-such-collection, k: 2}}
    fallback: [prompt]
  kb-verbatim:
    route: rag
    template: answer@production
    upstream: vanished
    retrieval: {{collection: kb, k: 2, mode: hybrid, min_groundedness: 0.5}}
    limits: {{max_tokens: 60}}
    fallback: [extractive]
  split:
    route: prompt
    template: copy@production
    upstream: hosted
    variants: {{a: {{weight: 70}}, b: {{weight: 30}}}}
  shadowed:
    route: prompt
    template: ask@production
    upstream: hosted
    variants: {{main: {{weight: 1}}, challenger: {{weight: 0, upstream: backup}}}}
    shadow: [challenger]
  resilient:
    route: prompt
    template: ask@production
    upstream: dead
    variants: {{main: {{weight: 1}}, spare: {{weight: 0, upstream: backup}}}}
    fallback: [spare]
  lonely:
    route: prompt
    template: ask@production
    upstream: dead
  lonely-stream:
    route: prompt
    template: ask@production
    upstream: gone
  hurried:
    route: prompt
    template: ask@production
    upstream: slow
    limits: {{timeout_s: 0.5}}
  crowded:
    route: prompt
    template: ask@production
    upstream: slow
  cached:
    route: prompt
    template: ask@production
    upstream: backup
    cache: {{ttl_s: 60}}
  flip:
    route: {flip_route}
    template: ask@production
    upstream: hosted
    retrieval: {{collection: kb, k: 1, mode: sparse}}
"""


class Stack:
    def __init__(
        self,
        gateway: ServiceProcess,
        hosted: OpenAIUpstream,
        backup: OpenAIUpstream,
        slow: OpenAIUpstream,
        policy_file: Path,
        write_policy: Any,
        redis_url: str,
        prefix: str,
        spans: Received,
    ) -> None:
        self.gateway = gateway
        self.hosted = hosted
        self.backup = backup
        self.slow = slow
        self.policy_file = policy_file
        self.write_policy = write_policy
        self.redis_url = redis_url
        self.prefix = prefix
        self.spans = spans

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway.base_url, timeout=30)

    def metrics(self) -> str:
        return httpx.get(f"{self.gateway.base_url}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("invoke-retriever")
    with running(start_retriever(tmp)) as service:
        seed_collection(service, "kb", KB)
        yield service


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    retriever: ServiceProcess,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("invoke-gateway")
    policy_file = tmp / "policy.yaml"
    dead = f"http://127.0.0.1:{free_tcp_port()}/v1"
    with (
        OpenAIUpstream(model="hosted-model") as hosted,
        OpenAIUpstream(model="backup-model") as backup,
        OpenAIUpstream(model="slow-model", delay_s=1.0) as slow,
        otlp_receiver() as (otlp_url, spans),
    ):

        def write_policy(**overrides: str) -> None:
            policy_file.write_text(policy_yaml(hosted.url, backup.url, dead, slow.url, **overrides))

        write_policy()
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__ADMIN_TOKENS='{"pm": "invoke-admin"}',
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
            TRIVIUM_GATEWAY__MAX_IN_FLIGHT="6",
            TRIVIUM_GATEWAY__UPSTREAM__BREAKER_FAILURES="3",
            TRIVIUM_GATEWAY__UPSTREAM__BREAKER_OPEN_S="30",
            TRIVIUM_GATEWAY__STATS__FLUSH_S="0.1",
            TRIVIUM_GATEWAY__TRACING__OTLP_ENDPOINT=f"{otlp_url}/v1/traces",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
            for name, (body, variables) in TEMPLATES.items():
                publish_template(http, name, body, variables, ADMIN)
            yield Stack(
                gateway,
                hosted,
                backup,
                slow,
                policy_file,
                write_policy,
                redis_server.url,
                env["TRIVIUM_REGISTRY__KEY_PREFIX"],
                spans,
            )


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    stack.hosted.reset()
    stack.backup.reset()
    stack.slow.reset()
    with stack.client() as client:
        yield client


def invoke(http: httpx.Client, feature: str, **body: Any) -> httpx.Response:
    return http.post(f"/v1/features/{feature}/invoke", json=body)


# -- roads ---------------------------------------------------------------------------------


def test_prompt_road_renders_the_template_and_accounts_for_it(
    http: httpx.Client, stack: Stack
) -> None:
    before = stack.metrics()
    response = invoke(http, "copy", input={"product": "a solar kettle"}, user="u1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == "echo: Write copy for a solar kettle."
    assert (body["feature"], body["route"], body["variant"]) == ("copy", "prompt", None)
    assert body["template"] == "copy@1"
    assert body["citations"] == []
    sent = stack.hosted.requests[-1].body
    assert sent["model"] == "hosted-model"
    assert sent["max_tokens"] == 40
    assert sent["messages"] == [{"role": "user", "content": "Write copy for a solar kettle."}]
    usage = body["usage"]
    assert usage == {"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13}
    assert body["cost_usd"] == pytest.approx((6 * 1.0 + 7 * 2.0) / 1000)
    lineage = body["lineage"]
    assert lineage["template"] == "copy@1"
    assert lineage["upstream"] == "hosted"
    assert len(lineage["policy_hash"]) == 16
    assert body["id"].startswith("ans_")  # the answer's id, for feedback
    assert body["id"] != response.headers["x-request-id"]
    assert body["timings_ms"]["generate"] > 0
    assert body["timings_ms"]["total"] >= body["timings_ms"]["generate"]
    after = stack.metrics()

    def grew(name: str, **labels: str) -> float:
        labels["traffic"] = "production"
        return sample_value(after, name, **labels) - sample_value(before, name, **labels)

    assert (
        grew("trivium_requests_total", feature="copy", route="prompt", variant="", status="ok") == 1
    )
    assert grew("trivium_tokens_total", feature="copy", route="prompt", kind="prompt") == 6
    assert grew("trivium_tokens_total", feature="copy", route="prompt", kind="completion") == 7
    assert grew("trivium_cost_usd_total", feature="copy", route="prompt", variant="") == (
        pytest.approx(0.020)
    )
    assert (
        grew("trivium_request_duration_seconds_count", feature="copy", route="prompt", variant="")
        == 1
    )
    assert (
        sample_value(
            after, "trivium_template_version_info", template="copy", label="production", version="1"
        )
        == 1
    )


def test_rag_road_cites_its_passages_and_scores_groundedness(
    http: httpx.Client, stack: Stack
) -> None:
    stack.hosted.reply = lambda body: "Refunds reach the original card within five days [1]."
    response = invoke(http, "kb", input={"question": "When do refunds reach my card?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["route"] == "rag"
    assert body["citations"][0]["doc_id"] == "refunds"
    citation = body["citations"][0]
    assert citation["source"] == "kb/refunds.md"
    assert citation["offsets"] == [0, len(KB[0]["text"])]
    assert citation["index"] == 1
    prompt = stack.hosted.requests[-1].body["messages"][-1]["content"]
    assert "[1] Refunds reach the original card" in prompt
    assert body["groundedness"] == pytest.approx(1.0)
    assert body["verdict"] == "passed"
    assert body["needs_review"] is False
    assert body["lineage"]["retriever_index"]
    assert body["timings_ms"]["retrieve"] > 0


def test_the_extractive_road_answers_from_passages_when_the_model_is_dead(
    http: httpx.Client,
) -> None:
    for stream in (False, True):
        response = invoke(
            http, "kb-verbatim", input={"question": "When do refunds reach my card?"}, stream=stream
        )
        assert response.status_code == 200, response.text
        if stream:
            events = sse_events(response)
            text = "".join(data["text"] for kind, data in events if kind == "delta")
            body = events[-1][1]
            assert text == body["output"]
        else:
            body = response.json()
        assert body["route"] == "extractive"
        assert body["fallback"]["from"] == "rag"
        assert body["fallback"]["reason"] in ("connect", "circuit_open")
        assert body["citations"][0]["doc_id"] == "refunds"
        assert body["output"].startswith("[1] Refunds reach the original card")
        assert len(body["output"]) <= 60 * 4
        assert body["usage"]["total_tokens"] == 0
        assert body["cost_usd"] == 0
        assert body["groundedness"] == pytest.approx(1.0)
        assert body["verdict"] == "passed"
        assert body["template"] is None


def test_each_stage_is_a_span_with_genai_attributes(http: httpx.Client, stack: Stack) -> None:
    stack.hosted.reply = lambda body: "Refunds take five days [1]."
    response = invoke(http, "kb", input={"question": "refund timing?"})
    answer, request_id = response.json(), response.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        spans = [
            span
            for span in exported_spans(stack.spans)
            if any(
                a.key == "trivium.request_id" and a.value.string_value == request_id
                for a in span.attributes
            )
        ]
        names = {span.name for span in spans}
        if {"invoke kb", "retrieve", "render", "chat hosted-model"} <= names:
            break
        assert time.monotonic() < deadline, names
        time.sleep(0.1)
    by_name = {span.name: span for span in spans}
    root = by_name["invoke kb"]
    for child in ("retrieve", "render", "chat hosted-model"):
        assert by_name[child].parent_span_id == root.span_id
        assert by_name[child].trace_id == root.trace_id
    chat = {a.key: a.value for a in by_name["chat hosted-model"].attributes}
    assert chat["gen_ai.request.model"].string_value == "hosted-model"
    assert chat["gen_ai.usage.input_tokens"].int_value == answer["usage"]["prompt_tokens"]
    assert chat["gen_ai.usage.output_tokens"].int_value == answer["usage"]["completion_tokens"]
    lineage = {a.key: a.value.string_value for a in root.attributes}
    assert lineage["trivium.policy_hash"] == answer["lineage"]["policy_hash"]
    assert lineage["trivium.template"] == "answer@1"
    assert lineage["trivium.retriever_index"] == answer["lineage"]["retriever_index"]
    assert lineage["trivium.answer_id"] == answer["id"]


def test_a_streamed_answer_is_traced_too(http: httpx.Client, stack: Stack) -> None:
    body = {"input": {"question": "trace my stream"}, "stream": True}
    with http.stream("POST", "/v1/features/kb/invoke", json=body) as response:
        summary = sse_events(response)[-1][1]
        request_id = response.headers["x-request-id"]
    assert summary["id"].startswith("ans_")
    deadline = time.monotonic() + 10
    while True:
        spans = [
            span
            for span in exported_spans(stack.spans)
            if any(a.value.string_value == request_id for a in span.attributes)
        ]
        by_name = {span.name: span for span in spans}
        if {"invoke kb", "retrieve", "render", "chat hosted-model"} <= set(by_name):
            break
        assert time.monotonic() < deadline, set(by_name)
        time.sleep(0.1)
    root = by_name["invoke kb"]
    for child in ("retrieve", "render", "chat hosted-model"):
        assert by_name[child].parent_span_id == root.span_id
    chat = {a.key: a.value for a in by_name["chat hosted-model"].attributes}
    assert chat["gen_ai.usage.output_tokens"].int_value == summary["usage"]["completion_tokens"]
    lineage = {a.key: a.value.string_value for a in root.attributes}
    assert lineage["trivium.retriever_index"] == summary["lineage"]["retriever_index"]


def test_passages_are_cut_to_the_policy_length_and_the_feature_sets_temperature(
    http: httpx.Client, stack: Stack
) -> None:
    body = invoke(http, "kb-short", input={"question": "refunds card"}).json()
    assert body["citations"][0]["doc_id"] == "refunds"
    assert body["citations"][0]["offsets"] == [0, 20]
    sent = stack.hosted.requests[-1].body
    assert "[1] Refunds reach the or\n" in sent["messages"][-1]["content"]
    assert sent["temperature"] == 0.3
    invoke(http, "kb-short", input={"question": "refunds card"}, temperature=1.5)
    assert stack.hosted.requests[-1].body["temperature"] == 1.5


def test_poorly_grounded_answers_are_flagged_or_withheld(http: httpx.Client, stack: Stack) -> None:
    stack.hosted.reply = lambda body: "Our office cat is called Biscuit."
    flagged = invoke(http, "kb", input={"question": "When do refunds reach my card?"}).json()
    assert flagged["verdict"] == "flagged"
    assert flagged["needs_review"] is True
    assert flagged["output"] == "Our office cat is called Biscuit."
    assert flagged["groundedness"] < 0.5
    withheld = invoke(http, "kb-strict", input={"question": "zebra quantum saxophone"})
    assert withheld.status_code == 200
    body = withheld.json()
    assert body["verdict"] == "withheld"
    assert body["output"] is None


def test_rag_plus_prompt_adds_passages_as_context(http: httpx.Client, stack: Stack) -> None:
    stack.hosted.reply = lambda body: "Reset the password from the login page."
    body = invoke(http, "kb-strict", messages=[{"role": "user", "content": "forgot password"}])
    answer = body.json()
    assert answer["route"] == "rag+prompt"
    assert answer["verdict"] == "passed"
    messages = stack.hosted.requests[-1].body["messages"]
    assert messages[0]["role"] == "system"
    assert "[1] Reset a forgotten password" in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "Question: forgot password"}


def test_streaming_sends_deltas_then_a_summary(http: httpx.Client) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    with http.stream(
        "POST", "/v1/features/ask/invoke", json={"input": {"question": "hi there"}, "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "summary"
    assert set(kinds[:-1]) == {"delta"}
    text = "".join(data["text"] for kind, data in events if kind == "delta")
    summary = events[-1][1]
    assert text == summary["output"] == "echo: Question: hi there"
    assert summary["usage"]["completion_tokens"] == 4
    timings = summary["timings_ms"]
    assert timings["generate"] > 0
    assert timings["total"] >= timings["generate"]


def test_parameters_that_change_nothing_are_accepted(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": "ask",
            "messages": [{"role": "user", "content": "hi there"}],
            "response_format": {"type": "text"},
            "logprobs": False,
            "modalities": ["text"],
            "store": False,
            "metadata": {"team": "checkout"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: Question: hi there"


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events, event = [], ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((event, json.loads(line.removeprefix("data: "))))
    return events


def test_a_stream_that_fails_before_its_first_byte_keeps_its_status(http: httpx.Client) -> None:
    body = {"input": {"question": "anyone?"}, "stream": True}
    with http.stream("POST", "/v1/features/lonely-stream/invoke", json=body) as response:
        response.read()
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "retry-after" in response.headers


def test_a_stream_cut_midway_ends_with_an_error_event(http: httpx.Client, stack: Stack) -> None:
    stack.hosted.cut_stream_next()
    body = {"input": {"question": "cut me off"}, "stream": True}
    with http.stream("POST", "/v1/features/ask/invoke", json=body) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[0] == ("delta", {"text": "echo:"})
    kind, problem = events[-1]
    assert kind == "error"
    assert problem["status"] == 502
    assert problem["upstream_error"] == "protocol"


# -- the OpenAI protocol ----------------------------------------------------------------------


def test_the_openai_client_works_unchanged(stack: Stack) -> None:
    client = openai.OpenAI(base_url=f"{stack.gateway.base_url}/v1", api_key="unused")
    try:
        models = {model.id for model in client.models.list()}
        assert {"ask", "kb", "copy"} <= models
        completion = client.chat.completions.create(
            model="ask", messages=[{"role": "user", "content": "how are you"}], max_tokens=20
        )
        assert completion.choices[0].message.content == "echo: Question: how are you"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert completion.usage.completion_tokens == 5
        extension = (completion.model_extra or {})["trivium"]
        assert extension["route"] == "prompt"
        assert extension["lineage"]["template"] == "ask@1"
        stream = client.chat.completions.create(
            model="ask",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "echo: Question: stream me"
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 4
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(
                model="no-such-feature", messages=[{"role": "user", "content": "x"}]
            )
        assert missing.value.body is not None
        assert missing.value.body["param"] == "model"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(
                model="ask", messages=[{"role": "user", "content": "x"}], temperature=7
            )
        assert "temperature" in str(bad.value)
        assert bad.value.body["param"] == "temperature"  # type: ignore[index]
    finally:
        client.close()


# -- variants, shadows, cache -----------------------------------------------------------------


def test_variant_split_follows_the_weights_and_sticks_to_the_user(http: httpx.Client) -> None:
    seen = [
        invoke(http, "split", input={"product": "p"}, user=f"user-{i}").json()["variant"]
        for i in range(300)
    ]
    share_a = seen.count("a") / len(seen)
    assert set(seen) == {"a", "b"}
    assert 0.62 <= share_a <= 0.78, share_a  # 70% +- 4.7 standard deviations at n=300
    again = {
        invoke(http, "split", input={"product": "p"}, user="user-7").json()["variant"]
        for _ in range(10)
    }
    assert again == {seen[7]}
    by_session = {
        invoke(http, "split", input={"product": "p"}, session="s-1").json()["variant"]
        for _ in range(10)
    }
    assert len(by_session) == 1


def test_a_shadow_runs_on_a_copy_and_is_never_returned(http: httpx.Client, stack: Stack) -> None:
    stack.backup.reply = lambda body: "the challenger's answer"
    response = invoke(http, "shadowed", input={"question": "which is better"}, user="shadow-user")
    body = response.json()
    assert body["variant"] == "main"
    assert body["output"] == "echo: Question: which is better"
    deadline = time.monotonic() + 10
    while not stack.backup.requests:
        assert time.monotonic() < deadline, "the shadow never reached its upstream"
        time.sleep(0.05)
    assert stack.backup.requests[0].body["messages"][-1]["content"] == "Question: which is better"
    client = redis.Redis.from_url(stack.redis_url)
    try:
        records: list[Any] = []
        while not records:
            assert time.monotonic() < deadline, "no shadow record"
            records = client.xrange(f"{stack.prefix}:shadow:shadowed") or []
            time.sleep(0.05)
        record = json.loads(records[-1][1][b"record"])
    finally:
        client.close()
    assert record["shadow"] == "challenger"
    assert record["status"] == "ok"
    assert record["output"] == "the challenger's answer"
    assert record["primary_output"] == body["output"]
    assert record["request_id"] == response.headers["x-request-id"]


def test_a_shadow_never_slows_the_caller(http: httpx.Client, stack: Stack) -> None:
    stack.backup.delay_s = 2.0
    began = time.monotonic()
    assert invoke(http, "shadowed", input={"question": "fast?"}).status_code == 200
    assert time.monotonic() - began < 1.5
    while not stack.backup.requests:  # the shadow did go out (and cannot leak into later tests)
        assert time.monotonic() - began < 10, "the shadow never reached its upstream"
        time.sleep(0.02)


def test_the_response_cache_answers_repeats_without_the_upstream(
    http: httpx.Client, stack: Stack
) -> None:
    first = invoke(http, "cached", input={"question": "cache  me"}).json()
    second = invoke(http, "cached", input={"question": " cache me "}).json()
    assert first["cached"] is False
    assert second["cached"] is True
    assert second["output"] == first["output"]
    assert second["id"] != first["id"]
    assert second["cost_usd"] == 0
    assert len(stack.backup.requests) == 1
    other = invoke(http, "cached", input={"question": "something else"}).json()
    assert other["cached"] is False
    metrics = stack.metrics()
    assert (
        sample_value(metrics, "trivium_cache_requests_total", feature="cached", result="hit") >= 1
    )


# -- failures -------------------------------------------------------------------------------


def test_fallback_on_upstream_death_then_the_circuit_opens(
    http: httpx.Client, stack: Stack
) -> None:
    reasons = []
    for _ in range(5):
        response = invoke(http, "resilient", input={"question": "still there?"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["variant"] == "spare"
        assert body["lineage"]["upstream"] == "backup"
        reasons.append(body["fallback"]["reason"])
        assert body["fallback"]["from"] == "prompt"
    assert reasons[0] == "connect"
    assert reasons[-1] == "circuit_open"
    metrics = stack.metrics()
    assert sample_value(metrics, "trivium_upstream_circuit_state", upstream="dead") == 2
    assert (
        sample_value(
            metrics,
            "trivium_fallbacks_total",
            feature="resilient",
            traffic="production",
            **{"from": "prompt", "to": "prompt", "reason": "circuit_open"},
        )
        >= 1
    )


def test_no_fallback_left_is_a_clear_503_with_retry_after(http: httpx.Client) -> None:
    response = invoke(http, "lonely", input={"question": "anyone?"})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    problem = response.json()
    assert problem["upstream"] == "dead"
    assert problem["upstream_error"] in ("connect", "circuit_open")


def test_the_retriever_failing_falls_back_to_the_prompt_road(http: httpx.Client) -> None:
    body = invoke(http, "kb-missing", input={"question": "refunds?"}).json()
    assert body["route"] == "prompt"
    assert body["fallback"] == {"from": "rag", "reason": "retriever_error"}
    assert body["citations"] == []


def test_a_deadline_passing_is_504(http: httpx.Client) -> None:
    began = time.monotonic()
    response = invoke(http, "hurried", input={"question": "slow?"})
    assert response.status_code == 504
    assert response.json()["code"] == "gateway_timeout"
    assert time.monotonic() - began < 1.0


def test_overload_is_503_at_once_never_a_queue(stack: Stack) -> None:
    def call(i: int) -> httpx.Response:
        with stack.client() as client:
            return invoke(client, "crowded", input={"question": f"q{i}"})

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(call, range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 6
    assert statuses.count(503) == 6
    rejected = next(r for r in responses if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["code"] == "overloaded"


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "body", "status", "field"),
    [
        ("no-such-feature", {"input": {"question": "x"}}, 404, "feature"),
        ("ask", {}, 400, "input"),
        (
            "ask",
            {"input": {"question": "x"}, "messages": [{"role": "user", "content": "x"}]},
            400,
            "input",
        ),
        ("ask", {"input": {"question": "x"}, "colour": "red"}, 400, "colour"),
        ("ask", {"input": {"question": "x"}, "max_tokens": 0}, 400, "max_tokens"),
        ("ask", {"input": {"wrong": "x"}}, 400, "input.question"),
        ("ask", {"messages": []}, 400, "messages"),
        ("ask", {"messages": [{"role": "assistant", "content": "x"}]}, 400, "messages[0].role"),
        ("ask", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
        ("copy", {"input": {"product": "x" * 201}}, 413, "input"),
        ("kb", {"input": {"question": "x", "passages": []}}, 400, "input.passages"),
    ],
)
def test_bad_input_gets_a_problem_naming_the_field(
    http: httpx.Client, feature: str, body: dict[str, Any], status: int, field: str
) -> None:
    response = invoke(http, feature, **body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field


def test_the_openapi_schema_documents_the_invoke_routes(http: httpx.Client) -> None:
    schema = http.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/features/{feature}/invoke" in paths
    assert "/v1/chat/completions" in paths
    assert "/v1/stats" in paths


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "ask", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {
                "model": "ask",
                "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
            },
            "messages[0].content",
        ),
        ({"model": "ask", "messages": []}, "messages"),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        (
            {
                "model": "ask",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
            },
            "tools",
        ),
        (
            {
                "model": "ask",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        ({"model": "ask", "messages": [{"role": "user", "content": "x"}], "seed": 7}, "seed"),
        ({"model": "ask", "messages": [{"role": "user", "content": "x"}], "colour": 1}, "colour"),
    ],
)
def test_bad_chat_requests_get_an_openai_error_naming_the_param(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_malformed_and_oversize_bodies_are_refused(http: httpx.Client) -> None:
    broken = http.post(
        "/v1/features/ask/invoke",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400
    huge = http.post("/v1/features/ask/invoke", json={"input": {"question": "x" * 2_000_000}})
    assert huge.status_code == 413


# -- the registry and the policy, live ------------------------------------------------------------


def test_a_template_rollback_is_seen_by_the_next_request(http: httpx.Client) -> None:
    published = http.post(
        "/v1/templates/copy/versions",
        json={"body": "NEW copy for {{ product }}.", "metadata": {"variables": ["product"]}},
        headers=ADMIN,
    )
    assert published.status_code == 201
    version = published.json()["version"]
    promoted = http.put(
        "/v1/templates/copy/labels/production", json={"version": version}, headers=ADMIN
    )
    assert promoted.status_code == 200
    assert invoke(http, "copy", input={"product": "tea"}).json()["output"] == (
        "echo: NEW copy for tea."
    )
    rolled = http.post("/v1/templates/copy/labels/production/rollback", json={}, headers=ADMIN)
    assert rolled.status_code == 200
    after = invoke(http, "copy", input={"product": "tea"}).json()
    assert after["output"] == "echo: Write copy for tea."
    assert after["template"] == "copy@1"


def test_flipping_a_route_under_load_fails_no_request(http: httpx.Client, stack: Stack) -> None:
    stop = threading.Event()
    results: list[tuple[int, str]] = []

    def load() -> None:
        with stack.client() as client:
            while not stop.is_set():
                response = invoke(client, "flip", input={"question": "refunds card"})
                route = response.json().get("route", "") if response.status_code == 200 else ""
                results.append((response.status_code, route))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for route in ("rag+prompt", "prompt", "rag+prompt", "prompt"):
            time.sleep(0.4)
            stack.write_policy(flip_route=route)
            reloaded = http.post("/v1/policy:reload", headers=ADMIN)
            assert reloaded.status_code == 200, reloaded.text
        time.sleep(0.4)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        stack.write_policy()
    assert len(results) > 20
    assert {status for status, _ in results} == {200}
    assert {route for _, route in results} == {"prompt", "rag+prompt"}


def test_a_bad_policy_file_keeps_the_good_one_serving(http: httpx.Client, stack: Stack) -> None:
    stack.policy_file.write_text(
        stack.policy_file.read_text().replace("route: prompt", "route: telepathy", 1)
    )
    try:
        rejected = http.post("/v1/policy:reload", headers=ADMIN)
        assert rejected.status_code == 422
        assert rejected.json()["errors"][0]["path"] == "features.copy.route"
        assert invoke(http, "copy", input={"product": "x"}).status_code == 200
    finally:
        stack.write_policy()


def test_rejected_requests_are_counted_but_never_timed(http: httpx.Client, stack: Stack) -> None:
    def settled_count() -> int:
        time.sleep(1.5)  # past the stats flush
        stats = http.get("/v1/stats", params={"feature": "copy"}).json()
        return int(stats["features"].get("copy", {}).get("prompt", {}).get("count", 0))

    assert invoke(http, "copy", input={"product": "baseline"}).status_code == 200
    before_metrics, before_count = stack.metrics(), settled_count()
    bad = [
        invoke(http, "copy", input={"product": "x"}, messages=[{"role": "user", "content": "y"}]),
        invoke(http, "copy", input={"product": "x" * 201}),
        invoke(http, "copy", input={"brand": "no product variable"}),
    ]
    assert [r.status_code for r in bad] == [400, 413, 400], [r.text for r in bad]
    after_metrics, after_count = stack.metrics(), settled_count()
    labels = {"feature": "copy", "route": "prompt", "variant": "", "traffic": "production"}

    def delta(name: str, **extra: str) -> float:
        return sample_value(after_metrics, name, **labels, **extra) - sample_value(
            before_metrics, name, **labels, **extra
        )

    assert delta("trivium_requests_total", status="rejected") == 3
    assert delta("trivium_request_duration_seconds_count") == 0
    assert after_count == before_count


def test_stats_summarise_the_window(http: httpx.Client) -> None:
    for _ in range(3):
        assert invoke(http, "copy", input={"product": "stats"}).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        stats = http.get("/v1/stats", params={"feature": "copy"}).json()
        route = stats["features"].get("copy", {}).get("prompt")
        if route and route["count"] >= 3:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.1)
    assert route["error_rate"] == 0
    latency = route["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
