"""The semantic cache end to end: a real gateway, a real retriever (which embeds and stores),
a scripted upstream. A paraphrase replays the answer, marked `cached: "semantic"` with its
similarity and the original's id; a near miss, another template version, another policy, an
earlier turn that differs or a re-ingest never does."""

from __future__ import annotations

import json
import time
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
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.prometheus import sample_value
from trivium.common.redis_server import RedisServerProcess

ADMIN = {"authorization": "Bearer semantic-admin"}
PAIRS = Path(__file__).resolve().parents[1] / "data" / "semantic_cache_paraphrases.jsonl"
ROWS = {row["id"]: row for row in map(json.loads, PAIRS.read_text().splitlines())}
TICKET = ROWS["triage-5"]  # paraphrase 0.969, near miss 0.785 (MiniLM cosine)
QUESTION = ROWS["pubmedqa-10223070"]  # 0.968 / 0.876
MOLE = ROWS["pubmedqa-2503176"]  # 0.968 / 0.640


def policy(upstream: str, temperature: float = 0.0) -> str:
    return f"""
version: 1
upstreams:
  hosted: {{url: "{upstream}", model: hosted-model}}
features:
  tickets:
    route: prompt
    template: ask@production
    upstream: hosted
    temperature: {temperature}
    cache: {{semantic: {{}}}}
  chat:
    route: prompt
    template: ask@production
    upstream: hosted
    cache: {{semantic: {{threshold: 0.94, max_entries: 50}}}}
  kb:
    route: rag
    template: answer@production
    upstream: hosted
    retrieval: {{collection: kb, k: 1, mode: dense}}
    cache: {{ttl_s: 1, semantic: {{ttl_s: 600}}}}
"""


class Stack:
    def __init__(
        self,
        gateway: ServiceProcess,
        retriever: ServiceProcess,
        upstream: OpenAIUpstream,
        policy_file: Path,
    ) -> None:
        self.gateway, self.retriever, self.upstream = gateway, retriever, upstream
        self.policy_file = policy_file


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("semantic")
    policy_file = tmp / "policy.yaml"
    with (
        running(start_retriever(tmp_path_factory.mktemp("semantic-retriever"))) as retriever,
        OpenAIUpstream(
            model="hosted-model", reply=lambda body: f"answer {time.monotonic_ns()}"
        ) as upstream,
    ):
        seed_collection(
            retriever, "kb", [{"id": "mole", "text": "Inhibin is raised in hydatidiform mole."}]
        )
        policy_file.write_text(policy(upstream.url))
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__ADMIN_TOKENS='{"pm": "semantic-admin"}',
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
            TRIVIUM_GATEWAY__CACHE__SEMANTIC_LOOKUP_TIMEOUT_S="5",
        )
        with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
            publish_template(http, "ask", "Q: {{ question }}", ["question"], ADMIN)
            publish_template(
                http, "answer", "{{ passages }} Q: {{ question }}", ["passages", "question"], ADMIN
            )
            yield Stack(gateway, retriever, upstream, policy_file)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    stack.upstream.reset()
    with stack.gateway.client() as client:
        yield client


def ask(http: httpx.Client, feature: str, **body: Any) -> dict[str, Any]:
    response = http.post(f"/v1/features/{feature}/invoke", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def entries(stack: Stack, namespace: str) -> int:
    with stack.retriever.client() as retriever:
        found = retriever.get(f"/v1/cache/{namespace}")
    return int(found.json()["entries"]) if found.status_code == 200 else 0


def stored(stack: Stack, namespace: str, before: int) -> None:
    """Stores run after the answer: wait until the namespace holds more than `before`."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if entries(stack, namespace) > before:
            return
        time.sleep(0.05)
    raise AssertionError(f"{namespace} never held more than {before} entries")


def test_a_paraphrase_replays_the_answer_and_a_near_miss_does_not(
    http: httpx.Client, stack: Stack
) -> None:
    before = entries(stack, "tickets")
    first = ask(http, "tickets", input={"question": TICKET["original"]})
    assert first["cached"] is False
    assert "semantic_cache" not in first
    stored(stack, "tickets", before)
    hit = ask(http, "tickets", input={"question": TICKET["paraphrase"]})
    assert hit["cached"] == "semantic"
    assert hit["output"] == first["output"]
    assert hit["id"] != first["id"]
    assert hit["cost_usd"] == 0
    assert hit["usage"]["total_tokens"] == 0
    assert hit["semantic_cache"]["original_id"] == first["id"]
    assert hit["semantic_cache"]["threshold"] == 0.94
    assert 0.94 <= hit["semantic_cache"]["similarity"] <= 1
    assert len(stack.upstream.requests) == 1
    near = ask(http, "tickets", input={"question": TICKET["near_miss"]})
    assert near["cached"] is False
    assert near["output"] != first["output"]
    assert len(stack.upstream.requests) == 2
    stored(stack, "tickets", before + 1)  # the near miss's own answer (no store left running)
    metrics = http.get("/metrics").text
    for result in ("semantic_hit", "semantic_miss", "semantic_store"):
        assert sample_value(
            metrics, "trivium_cache_requests_total", feature="tickets", result=result
        ), result
    assert not sample_value(  # exact hits are counted apart: none here
        metrics, "trivium_cache_requests_total", feature="tickets", result="hit"
    )


def test_the_openai_route_says_semantic_too(http: httpx.Client, stack: Stack) -> None:
    question = ROWS["cisi-20"]

    def chat(text: str) -> dict[str, Any]:
        body = {"model": "tickets", "messages": [{"role": "user", "content": text}]}
        answer = http.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        trivium: dict[str, Any] = answer.json()["trivium"]
        return trivium

    before = entries(stack, "tickets")
    assert chat(question["original"])["cached"] is False
    stored(stack, "tickets", before)
    # input {question} and a one-turn chat are different scopes: the chat misses here
    assert ask(http, "tickets", input={"question": question["paraphrase"]})["cached"] is False
    replayed = chat(question["paraphrase"])
    assert replayed["cached"] == "semantic"
    assert replayed["semantic_cache"]["threshold"] == 0.94
    stored(stack, "tickets", before + 1)  # the input's miss stored its answer too


def test_an_earlier_turn_that_differs_never_hits(http: httpx.Client, stack: Stack) -> None:
    history = [
        {"role": "user", "content": "I have a question about appendicitis."},
        {"role": "assistant", "content": "Go ahead."},
    ]
    first = ask(
        http, "chat", messages=[*history, {"role": "user", "content": QUESTION["original"]}]
    )
    stored(stack, "chat", 0)
    same = ask(
        http, "chat", messages=[*history, {"role": "user", "content": QUESTION["paraphrase"]}]
    )
    assert same["cached"] == "semantic"
    assert same["semantic_cache"]["original_id"] == first["id"]
    other = [{**history[0], "content": "I have a question about ovaries."}, history[1]]
    changed = ask(
        http, "chat", messages=[*other, {"role": "user", "content": QUESTION["paraphrase"]}]
    )
    assert changed["cached"] is False


def test_a_new_template_version_or_policy_never_hits(http: httpx.Client, stack: Stack) -> None:
    row = ROWS["cisi-15"]
    before = entries(stack, "tickets")
    ask(http, "tickets", input={"question": row["original"]})
    stored(stack, "tickets", before)
    assert ask(http, "tickets", input={"question": row["paraphrase"]})["cached"] == "semantic"
    publish_template(http, "ask", "Question: {{ question }}", ["question"], ADMIN)
    after_template = ask(http, "tickets", input={"question": row["paraphrase"]})
    assert after_template["cached"] is False
    assert after_template["template"] != "ask@1"
    stack.policy_file.write_text(policy(stack.upstream.url, temperature=0.1))
    assert http.post("/v1/policy:reload", headers=ADMIN).json()["result"] == "ok"
    assert ask(http, "tickets", input={"question": row["original"]})["cached"] is False


def test_a_reingest_invalidates_rag_answers(http: httpx.Client, stack: Stack) -> None:
    first = ask(http, "kb", input={"question": MOLE["original"]})
    assert first["lineage"]["retriever_index"]
    stored(stack, "kb", 0)
    hit = ask(http, "kb", input={"question": MOLE["paraphrase"]})
    assert hit["cached"] == "semantic"
    assert hit["lineage"]["retriever_index"] == first["lineage"]["retriever_index"]
    seed = {"documents": [{"id": "more", "text": "Inhibin falls after evacuation."}]}
    with stack.retriever.client() as retriever:
        assert retriever.post("/v1/collections/kb/documents", json=seed).status_code == 200
    assert ask(http, "kb", input={"question": MOLE["paraphrase"]})["cached"] is False
