"""Trials end to end: `trivium trial run|list|show|report` and the runner against a real
gateway (`auth.mode: keys`, a private Redis), a real retriever, and scripted OpenAI-protocol
upstreams whose answers are known, so every score is known exactly.

Feature `triage` (prompt road) has two arms that answer differently: variant `main` on the
`hosted` upstream (right but for one case, and one case it fails), variant `cheap` on `backup`
(always "billing", once out of the label set). Feature `docs` (rag road, BM25 over a real
retriever) scores an `answer` + `doc_ids` dataset. Feature `grader` is an LLM judge on its own
scripted upstream (the shipped `trial-judge` template); feature `tuned` (finetune road) serves
an adapter published straight into the registry with a recorded training time, on an upstream
priced per GPU hour. One gateway and retriever serve the module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner, Result

from tests.e2e.conftest import (
    TRIVIUM,
    ServiceProcess,
    publish_template,
    run_trivium,
    running,
    seed_collection,
    start_gateway,
    start_retriever,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.processes import eventually
from tests.support.prometheus import sample_value
from trivium.cli.main import cli
from trivium.common.contracts.trials import Estimate, TrialRecord
from trivium.common.errors import InvalidInputError
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RegistrySettings
from trivium.registry import Registry
from trivium.registry.templates import parse_template_file
from trivium.trials.client import GatewayClient, GatewayError
from trivium.trials.runner import TrialPlan, TrialRunner
from trivium.trials.scoring import score_case
from trivium.trials.summary import summarise_trial

ADMIN = {"authorization": "Bearer trials-e2e-admin"}
NDJSON = {"content-type": "application/x-ndjson"}
POLICY = """
version: 1
upstreams:
  hosted:
    url: "{hosted}"
    model: hosted-model
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
  backup: {{url: "{backup}", model: backup-model}}
  judge:
    url: "{judge}"
    model: judge-model
    price: {{prompt_per_1k: 0, completion_per_1k: 1000}}
  gpu:
    url: "{hosted}"
    model: hosted-model
    price: {{gpu_hour_usd: 3.6, tokens_per_hour: 1000000}}
features:
  triage:
    route: prompt
    template: triage@production
    upstream: hosted
    variants: {{main: {{weight: 1}}, cheap: {{weight: 0, upstream: backup}}}}
  docs:
    route: rag
    template: kbq@production
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: sparse}}
  grader:
    route: prompt
    template: trial-judge@production
    upstream: judge
  tuned:
    route: finetune
    template: triage@production
    adapter: tuned-lora@production
    upstream: gpu
    variants:
      own: {{weight: 1}}
      untimed: {{weight: 0, adapter: tuned-lora@2}}
      api: {{weight: 0, upstream: hosted}}
"""
TRAIN_SECONDS = 5400
"""`tuned-lora@1`'s recorded training time (version 2 records none)."""
# The judge's answer per question: 4 words each, so $4 each at $1 per completion token.
VERDICTS = {
    "where does gamma come from": "faithfulness: 0.8\ncorrectness: 0.6",
    "alpha beta": "faithfulness: 1\ncorrectness: 0.5",
    "delta": "it looks fine here",
}
QUESTION = re.compile(r"^Question: (.*)$", re.MULTILINE)
TEMPLATES = {
    "triage": ("Case {{ case }}. Ticket: {{ ticket }}", ["case", "ticket"]),
    "kbq": (
        "Case {{ case }}.\n{% for p in passages %}[{{ p.index }}] {{ p.text }}\n{% endfor %}"
        "Question: {{ question }}",
        ["case", "passages", "question"],
    ),
}
KB = [
    {"id": "gamma", "text": "Gamma rays come from the gamma source."},
    {"id": "alpha-beta", "text": "Alpha alpha beta notes."},
    {"id": "beta", "text": "Beta only here."},
    {"id": "delta", "text": "Delta facts."},
]
CASE = re.compile(r"Case (\S+)\.")
JUDGE_TEMPLATE = (
    Path(__file__).parents[2] / "services/cli/trivium/cli/demo_templates/trial-judge.j2"
)

# triage-eval: case -> (expected label, main's answer, cheap's answer); main fails t6.
TRIAGE = {
    "t0": ("billing", "billing", "billing"),
    "t1": ("bug", "bug", "billing"),
    "t2": ("account", "account", "no idea"),
    "t3": ("billing", "Billing.", "billing"),
    "t4": ("bug", "bug", "billing"),
    "t5": ("account", "bug", "billing"),
    "t6": ("billing", None, "billing"),
}
# docs-eval: case -> (question, expected answer, expected doc ids, the answer given).
DOCS = {
    "q0": ("where does gamma come from", "gamma source", ["gamma"], "The gamma source."),
    "q1": ("alpha beta", "beta notes", ["beta"], "beta only"),
    "q2": ("delta", "delta", ["missing"], "no"),
}


class Script:
    """An upstream's answers by case id (`Case <id>.` in the prompt), with a count of the
    requests per case and a hook run on each request before it is answered."""

    def __init__(self, answers: Callable[[str], str | None]) -> None:
        self.answers = answers
        self.asked: Counter[str] = Counter()
        self.on_request: Callable[[str, int], None] | None = None
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        prompt = str(body["messages"][-1]["content"])
        match = CASE.search(prompt)
        case = match.group(1) if match else "?"
        with self._lock:
            self.asked[case] += 1
            n = self.asked[case]
        if self.on_request is not None:
            self.on_request(case, n)
        answer = self.answers(case)
        if answer is None:
            raise RuntimeError(f"case {case} fails upstream")  # a 500 to the gateway
        return answer


def hosted_answer(case: str) -> str | None:
    if case in TRIAGE:
        return TRIAGE[case][1]
    if case in DOCS:
        return DOCS[case][3]
    return "billing"  # production traffic and the resumed/stopped trials' cases


def backup_answer(case: str) -> str | None:
    return TRIAGE[case][2] if case in TRIAGE else "billing"


def judge_answer(body: dict[str, Any]) -> str:
    match = QUESTION.search(str(body["messages"][-1]["content"]))
    return VERDICTS.get(match.group(1) if match else "", "no question")


class _AnyAdapter:
    """Publishes what it is given: the model service's kind checks weights these tests lack."""

    name = "adapter"

    def validate(self, body: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return metadata


async def publish_adapters(redis_url: str, prefix: str) -> None:
    """`tuned-lora@1` (production) records its training time; `tuned-lora@2` records none."""
    client = aioredis.Redis.from_url(redis_url)
    registry = Registry(client, _AnyAdapter(), RegistrySettings(key_prefix=prefix), cache=False)
    timed = {"timings": {"train_seconds": TRAIN_SECONDS, "eval_seconds": 12}}
    await registry.publish("tuned-lora", "/adapters/tuned/1", timed, actor="qa")
    await registry.publish("tuned-lora", "/adapters/tuned/2", {}, actor="qa")
    await registry.promote("tuned-lora", "production", 1, actor="qa")
    await client.aclose()


@dataclass
class Stack:
    gateway: ServiceProcess
    hosted: Script
    backup: Script
    judge: OpenAIUpstream
    runner_key: str
    """invoke, read, trials."""
    app_key: str
    """invoke, feedback: the product."""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.base_url

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {key or self.runner_key}"}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def triage_rows(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i:02d}", "input": {"case": f"{prefix}{i:02d}", "ticket": "help"},
         "expected": {"label": "billing"}}
        for i in range(n)
    ]  # fmt: skip


def publish(http: httpx.Client, name: str, rows: list[dict[str, Any]]) -> None:
    published = http.post(f"/v1/datasets/{name}/versions", content=jsonl(rows), headers=NDJSON)
    assert published.status_code == 201, published.text


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("trials")
    hosted, backup = Script(hosted_answer), Script(backup_answer)
    with (
        running(start_retriever(tmp_path_factory.mktemp("trials-retriever"))) as retriever,
        OpenAIUpstream(model="hosted-model", reply=hosted) as hosted_up,
        OpenAIUpstream(model="backup-model", reply=backup) as backup_up,
        OpenAIUpstream(model="judge-model", reply=judge_answer) as judge_up,
    ):
        seed_collection(retriever, "kb", KB)
        policy_file = tmp / "policy.yaml"
        policy_file.write_text(
            POLICY.format(hosted=hosted_up.url, backup=backup_up.url, judge=judge_up.url)
        )
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="trials-e2e-pepper",
            TRIVIUM_GATEWAY__ADMIN_TOKENS='{"ops": "trials-e2e-admin"}',
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
            TRIVIUM_GATEWAY__STATS__FLUSH_S="0.1",
            TRIVIUM_GATEWAY__UPSTREAM__MAX_RETRIES="0",
        )
        asyncio.run(publish_adapters(redis_server.url, env["TRIVIUM_REGISTRY__KEY_PREFIX"]))
        with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
            for name, (body, variables) in TEMPLATES.items():
                publish_template(http, name, body, variables, ADMIN)
            judge_body, judge_metadata = parse_template_file(JUDGE_TEMPLATE.read_text())
            publish_template(http, "trial-judge", judge_body, judge_metadata["variables"], ADMIN)
            keys = {}
            for name, scopes in (("runner", ["invoke", "read", "trials"]),
                                 ("product", ["invoke", "feedback"])):  # fmt: skip
                created = http.post(
                    "/v1/keys",
                    json={"name": name, "owner": "qa", "features": ["*"], "scopes": scopes},
                    headers=ADMIN,
                )
                assert created.status_code == 201, created.text
                keys[name] = created.json()["key"]
            deployed = Stack(
                gateway, hosted, backup, judge_up, keys["runner"], keys["product"], env
            )
            with deployed.http() as runner:
                triage = [
                    {"id": case, "input": {"case": case, "ticket": f"ticket {case}"},
                     "expected": {"label": label}}
                    for case, (label, _, _) in TRIAGE.items()
                ]  # fmt: skip
                publish(runner, "triage-eval", triage)
                docs = [
                    {"id": case, "input": {"case": case, "question": question},
                     "expected": {"answer": answer, "doc_ids": doc_ids}}
                    for case, (question, answer, doc_ids, _) in DOCS.items()
                ]  # fmt: skip
                publish(runner, "docs-eval", docs)
                publish(runner, "tuned-eval", triage_rows("u", 2))
            yield deployed


def trivium(stack: Stack, tmp: Path, *args: str) -> Result:
    """`trivium ...` in this process, as the runner key, against the module's gateway."""
    env = {"TRIVIUM_KEY": stack.runner_key, "TRIVIUM_DATA_DIR": str(tmp / "cli")}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def trial_record(stack: Stack, trial_id: str) -> TrialRecord:
    with stack.http() as http:
        answer = http.get(f"/v1/trials/{trial_id}")
    assert answer.status_code == 200, answer.text
    return msgspec.json.decode(answer.content, type=TrialRecord)


def newest_trial(stack: Stack, feature: str) -> TrialRecord:
    with stack.http() as http:
        listed = http.get("/v1/trials", params={"feature": feature, "limit": 1}).json()
    return trial_record(stack, listed["trials"][0]["id"])


PRODUCTION = 4
"""Production answers of `triage` (variant main), each with feedback."""


@pytest.fixture(scope="module")
def triage_trial(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> TrialRecord:
    """Production traffic with the product's feedback first, then `trivium trial run triage
    --arms main,cheap` through the CLI: the trial both scores and reads the online rates."""
    with stack.http(stack.app_key) as product:
        for i in range(PRODUCTION):
            answer = product.post(
                "/v1/features/triage/invoke",
                json={"input": {"case": f"p{i}", "ticket": "production"}, "user": f"u{i}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["variant"] == "main"
            events = [{"kind": "completed", "value": i != 0}]  # 3 of 4 completed
            if i < 2:
                events.append({"kind": "thumbs", "value": "up" if i == 0 else "down"})
            if i == 3:
                events.append({"kind": "escalated", "value": True})
            for event in events:
                sent = product.post(
                    "/v1/feedback", json={"answer_id": answer.json()["id"], **event}
                )
                assert sent.status_code == 200, sent.text

    def reported() -> dict[str, Any] | None:
        with stack.http() as http:
            window = http.get("/v1/stats", params={"feature": "triage"}).json()
        main = window["features"].get("triage", {}).get("prompt", {}).get("variants", {})
        feedback = (main.get("main") or {}).get("feedback") or {}
        return feedback if feedback.get("escalation", {}).get("count") == 1 else None

    eventually(reported, 5, "the product's feedback in the stats window")
    tmp = tmp_path_factory.mktemp("triage-trial")
    args = ("trial", "run", "triage", "--dataset", "triage-eval", "--arms", "main,cheap")
    ran = trivium(stack, tmp, *args, "--concurrency", "4", "--gateway", stack.url)
    assert ran.exit_code == 0, ran.output
    record = newest_trial(stack, "triage")
    assert f"trial {record.id} finished: main 7/7, cheap 7/7" in ran.output
    assert "accuracy" in ran.output  # the per-arm table
    return record


def arm(record: TrialRecord, name: str) -> Any:
    assert record.summary is not None
    [found] = [a for a in record.summary.arms if a.arm == name]
    return found


def test_the_scores_of_a_classification_trial_are_exactly_right(
    stack: Stack, triage_trial: TrialRecord
) -> None:
    assert (triage_trial.status, triage_trial.dataset, triage_trial.arms) == (
        "finished",
        "triage-eval@1",
        ["main", "cheap"],
    )
    main, cheap = arm(triage_trial, "main"), arm(triage_trial, "cheap")
    assert (main.cases, main.errors.value, main.errors.n) == (7, 1 / 7, 7)
    assert (main.accuracy.value, main.accuracy.n) == (5 / 6, 6)  # over the answered cases
    assert main.macro_f1 == pytest.approx((1 + 4 / 5 + 2 / 3) / 3, abs=1e-12)
    assert main.confusion == {
        "account": {"account": 1, "billing": 0, "bug": 1, "(other)": 0},
        "billing": {"account": 0, "billing": 2, "bug": 0, "(other)": 0},
        "bug": {"account": 0, "billing": 0, "bug": 2, "(other)": 0},
    }
    assert main.out_of_labels.value == 0.0
    assert (cheap.errors.value, cheap.accuracy.value, cheap.accuracy.n) == (0.0, 3 / 7, 7)
    assert cheap.macro_f1 == pytest.approx((2 / 3 + 0 + 0) / 3, abs=1e-12)
    assert cheap.out_of_labels.value == 1 / 7
    assert cheap.confusion == {
        "account": {"account": 0, "billing": 1, "bug": 0, "(other)": 1},
        "billing": {"account": 0, "billing": 3, "bug": 0, "(other)": 0},
        "bug": {"account": 0, "billing": 2, "bug": 0, "(other)": 0},
    }
    # main's upstream answered only main's cases (and production), once each
    assert all(stack.hosted.asked[case] == 1 for case in TRIAGE)
    assert all(stack.backup.asked[case] == 1 for case in TRIAGE)
    with stack.http() as http:
        cases = http.get(f"/v1/trials/{triage_trial.id}/cases", params={"arm": "main"}).json()
    failed = next(c for c in cases["cases"] if c["case_id"] == "t6")
    assert (failed["ok"], failed["status"] >= 500, "scores" in failed) == (False, True, False)


def test_online_rates_sit_beside_the_offline_ones(triage_trial: TrialRecord) -> None:
    main, cheap = arm(triage_trial, "main"), arm(triage_trial, "cheap")
    assert cheap.online is None  # production never ran cheap
    online: dict[str, Estimate] = main.online
    assert {k: (e.value, e.n) for k, e in online.items()} == {
        "completion": (0.75, 4),
        "satisfaction": (0.5, 2),
        "correction": (0.0, PRODUCTION),
        "escalation": (0.25, PRODUCTION),
    }
    assert online["completion"].low <= 0.75 <= online["completion"].high


def test_trial_traffic_is_labelled_apart_and_absent_from_the_stats_window(
    stack: Stack, triage_trial: TrialRecord
) -> None:
    with stack.http() as http:
        metrics = http.get("/metrics").text
        window = http.get("/v1/stats", params={"feature": "triage"}).json()
    cheap = {"feature": "triage", "route": "prompt", "variant": "cheap", "status": "ok"}
    assert sample_value(metrics, "trivium_requests_total", **cheap, traffic="trial") == 7
    assert sample_value(metrics, "trivium_requests_total", **cheap, traffic="production") == 0
    main = cheap | {"variant": "main"}
    assert sample_value(metrics, "trivium_requests_total", **main, traffic="trial") == 6
    assert sample_value(metrics, "trivium_requests_total", **main, traffic="production") == (
        PRODUCTION
    )
    prompt = window["features"]["triage"]["prompt"]
    assert prompt["count"] == PRODUCTION  # 14 trial requests, none in the window
    assert set(prompt["variants"]) == {"main"}


def test_the_report_is_written_in_every_format(
    stack: Stack, triage_trial: TrialRecord, tmp_path: Path
) -> None:
    written: dict[str, str] = {}
    for fmt in ("json", "md", "html"):
        out = tmp_path / f"report.{fmt}"
        args = ("trial", "report", triage_trial.id, "--format", fmt, "--out", str(out))
        result = trivium(stack, tmp_path, *args, "--gateway", stack.url)
        assert result.exit_code == 0, result.output
        assert str(out) in result.output
        written[fmt] = out.read_text()
    assert msgspec.json.decode(written["json"], type=TrialRecord) == triage_trial
    assert "| main |" in written["md"]
    assert "| cheap |" in written["md"]
    assert list(tmp_path.glob("report-*.png")), "the markdown's plots beside it"
    assert "<svg" in written["html"]
    assert "online: completion" in written["html"]


def test_list_and_show(stack: Stack, triage_trial: TrialRecord, tmp_path: Path) -> None:
    listed = trivium(stack, tmp_path, "trial", "list", "--feature", "triage", "--gateway",
                     stack.url, "--json")  # fmt: skip
    assert triage_trial.id in [t["id"] for t in json.loads(listed.output)]
    shown = trivium(stack, tmp_path, "trial", "show", triage_trial.id, "--gateway", stack.url,
                    "--json")  # fmt: skip
    assert msgspec.json.decode(shown.output, type=TrialRecord) == triage_trial


async def test_answer_and_retrieval_scores_are_exactly_right(stack: Stack) -> None:
    async with GatewayClient(stack.url, stack.runner_key) as client:
        runner = TrialRunner(client, scorer=score_case, summariser=summarise_trial)
        outcome = await runner.run(TrialPlan("docs", "docs-eval", arms=["rag"], concurrency=3))
    assert outcome.record.status == "finished"
    rag = arm(outcome.record, "rag")
    assert (rag.exact_match.value, rag.exact_match.n) == (1 / 3, 3)
    assert rag.token_f1.value == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-12)
    assert rag.recall_at_k.value == pytest.approx(2 / 3, abs=1e-12)
    assert rag.mrr.value == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-12)
    assert rag.accuracy is None
    assert rag.online is None
    async with GatewayClient(stack.url, stack.runner_key) as client:
        cited = {c.case_id: c.citations for c in await client.cases(outcome.record.id, "rag")}
    assert cited == {"q0": ["gamma"], "q1": ["alpha-beta", "beta"], "q2": ["delta"]}


def test_a_forced_arm_without_the_trials_scope_is_403(stack: Stack) -> None:
    with stack.http(stack.app_key) as product:
        refused = product.post(
            "/v1/features/triage/invoke",
            json={"input": {"case": "x", "ticket": "x"},
                  "trial": {"id": "trl_abcdefghij12", "arm": "cheap"}},
        )  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert refused.json()["field"] == "trial"


def test_a_killed_trial_resumes_without_rerunning_finished_cases(
    stack: Stack, tmp_path: Path
) -> None:
    with stack.http() as http:
        publish(http, "kill-eval", triage_rows("k", 12))
    env = trivium_env(tmp_path, None, TRIVIUM_KEY=stack.runner_key)
    args = ["trial", "run", "triage", "--dataset", "kill-eval", "--arms", "main", "--gateway",
            stack.url, "--concurrency", "1", "--batch-size", "2"]  # fmt: skip
    with (tmp_path / "run.log").open("wb") as log:
        process = subprocess.Popen([*TRIVIUM, *args], env=env, stdout=log, stderr=log)

    def kill_on_the_seventh(case: str, n: int) -> None:
        if case == "k06" and n == 1:
            os.kill(process.pid, signal.SIGKILL)

    stack.hosted.on_request = kill_on_the_seventh
    try:
        assert process.wait(timeout=30) == -signal.SIGKILL, (tmp_path / "run.log").read_text()
    finally:
        stack.hosted.on_request = None
    killed = newest_trial(stack, "triage")
    assert (killed.dataset, killed.status, killed.done) == ("kill-eval@1", "running", {"main": 6})
    with stack.http() as http:
        stored = http.get(f"/v1/trials/{killed.id}/cases", params={"arm": "main"}).json()
    stored_cases = [c["case_id"] for c in stored["cases"]]
    assert stored_cases == [f"k{i:02d}" for i in range(6)]  # one request ahead of the kill

    resumed = run_trivium(env, *args[:3], "--gateway", stack.url, "--resume", killed.id)
    assert resumed.returncode == 0, resumed.stderr
    assert f"trial {killed.id} finished: main 12/12" in resumed.stdout
    asked = {case: stack.hosted.asked[case] for case in (f"k{i:02d}" for i in range(12))}
    assert asked == {case: 2 if case == "k06" else 1 for case in asked}
    assert trial_record(stack, killed.id).status == "finished"


def test_ctrl_c_says_how_to_resume_and_resuming_finishes(stack: Stack, tmp_path: Path) -> None:
    with stack.http() as http:
        publish(http, "stop-eval", triage_rows("s", 9))

    def interrupt_on_the_fourth(case: str, n: int) -> None:
        if case == "s03":
            os.kill(os.getpid(), signal.SIGINT)

    stack.hosted.on_request = interrupt_on_the_fourth
    try:
        args = ("trial", "run", "triage", "--dataset", "stop-eval", "--arms", "main")
        stopped = trivium(stack, tmp_path, *args, "--concurrency", "1", "--gateway", stack.url)
    finally:
        stack.hosted.on_request = None
    assert stopped.exit_code == 130, stopped.output
    record = newest_trial(stack, "triage")
    assert record.status == "interrupted"
    assert record.done["main"] < 9
    resume = (
        f"resume with: trivium trial run triage --dataset stop-eval@1 --gateway {stack.url} "
        f"--resume {record.id}"
    )
    assert resume in stopped.output
    resumed = trivium(stack, tmp_path, *resume.removeprefix("resume with: trivium ").split())
    assert resumed.exit_code == 0, resumed.output
    assert trial_record(stack, record.id).done == {"main": 9}
    assert max(stack.hosted.asked[f"s{i:02d}"] for i in range(9)) <= 2


async def test_resuming_another_features_trial_is_refused(
    stack: Stack, triage_trial: TrialRecord
) -> None:
    async with GatewayClient(stack.url, stack.runner_key) as client:
        runner = TrialRunner(client, scorer=score_case, summariser=summarise_trial)
        with pytest.raises(InvalidInputError, match="of feature triage") as caught:
            await runner.run(TrialPlan("docs", None, resume=triage_trial.id))
        assert caught.value.field == "resume"
        with pytest.raises(GatewayError) as missing:
            await runner.run(TrialPlan("triage", "missing", arms=["main"]))
    assert (missing.value.status, missing.value.field) == (404, "name")


def test_an_unknown_arm_is_refused_naming_the_feature_arms(stack: Stack, tmp_path: Path) -> None:
    before = newest_trial(stack, "docs").id if _has_trials(stack, "docs") else None
    args = ("trial", "run", "docs", "--dataset", "docs-eval", "--arms", "finetune")
    result = trivium(stack, tmp_path, *args, "--gateway", stack.url)
    assert result.exit_code == 1
    assert "cannot take arm(s) finetune; its arms: prompt, rag, rag+prompt, extractive" in (
        result.output
    )
    after = newest_trial(stack, "docs").id if _has_trials(stack, "docs") else None
    assert after == before  # nothing created


def _has_trials(stack: Stack, feature: str) -> bool:
    with stack.http() as http:
        return bool(http.get("/v1/trials", params={"feature": feature}).json()["trials"])


def test_bad_datasets_are_rejected_naming_each_line(stack: Stack, tmp_path: Path) -> None:
    good = {"id": "a", "input": {"case": "a", "ticket": "x"}, "expected": {"label": "bug"}}
    rows = [
        good,
        {**good, "id": "a2", "expected": {}},
        good,
        {"id": "b", "expected": {"label": "bug"}},
    ]
    with stack.http() as http:
        refused = http.post("/v1/datasets/bad-eval/versions", content=jsonl(rows), headers=NDJSON)
        assert http.get("/v1/datasets/bad-eval").status_code == 404  # nothing published
    assert refused.status_code == 400, refused.text
    errors = [(e["line"], e["field"]) for e in refused.json()["errors"]]
    assert errors == [(2, "expected"), (3, "id"), (4, "input")]
    file = tmp_path / "bad.jsonl"
    file.write_bytes(jsonl(rows))
    published = run_trivium(stack.env, "datasets", "publish", str(file), "--name", "bad-eval")
    assert published.returncode == 1
    assert f"{file}:3: id: 'a' is also the id of line 1" in published.stderr


def test_run_needs_a_dataset_or_a_trial_to_resume() -> None:
    result = CliRunner().invoke(cli, ["trial", "run", "triage", "--gateway", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "--dataset NAME[@label] is required" in result.output


def test_without_a_gateway_or_a_running_stack_it_says_so(tmp_path: Path) -> None:
    env = {"TRIVIUM_KEY": "x", "TRIVIUM_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "empty"), "trial", "list"], env=env
    )
    assert result.exit_code == 1
    assert "no running stack found (trivium up); pass --gateway URL" in result.output


def test_adapter_versions_are_read_with_their_metadata(stack: Stack) -> None:
    with stack.http() as http:
        production = http.get("/v1/adapters/tuned-lora/labels/production")
        second = http.get("/v1/adapters/tuned-lora/versions/2")
        refusals = {
            path: http.get(path)
            for path in (
                "/v1/adapters/nope/labels/production",
                "/v1/adapters/tuned-lora/labels/staging",
                "/v1/adapters/tuned-lora/versions/9",
                "/v1/adapters/Bad!/versions/1",
            )
        }
    assert production.status_code == 200, production.text
    shown = production.json()
    assert set(shown) == {"name", "version", "sha256", "metadata", "created_at", "created_by"}
    assert (shown["name"], shown["version"], shown["created_by"]) == ("tuned-lora", 1, "qa")
    assert shown["metadata"]["timings"]["train_seconds"] == TRAIN_SECONDS
    assert (second.status_code, second.json()["version"], second.json()["metadata"]) == (200, 2, {})
    assert {path: (r.status_code, r.json()["field"]) for path, r in refusals.items()} == {
        "/v1/adapters/nope/labels/production": (404, "name"),
        "/v1/adapters/tuned-lora/labels/staging": (404, "label"),
        "/v1/adapters/tuned-lora/versions/9": (404, "version"),
        "/v1/adapters/Bad!/versions/1": (400, "name"),
    }
    with stack.http(stack.app_key) as product:  # invoke + feedback: no read
        refused = product.get("/v1/adapters/tuned-lora/labels/production")
    assert refused.status_code == 403, refused.text


async def test_a_finetune_arm_costs_its_training_time_at_the_gpu_hour_price(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trivium.trials.training")
    async with GatewayClient(stack.url, stack.runner_key) as client:
        runner = TrialRunner(client, scorer=score_case, summariser=summarise_trial)
        plan = TrialPlan("tuned", "tuned-eval", arms=["finetune", "untimed", "api"])
        outcome = await runner.run(plan)
    assert outcome.record.status == "finished"
    assert arm(outcome.record, "finetune").training_cost_usd == TRAIN_SECONDS / 3600 * 3.6
    assert arm(outcome.record, "untimed").training_cost_usd is None  # no timings recorded
    assert arm(outcome.record, "api").training_cost_usd is None  # a per-token price
    said = {
        r.__dict__["arm"]: r.__dict__["reason"]
        for r in caplog.records
        if r.name == "trivium.trials.training"
    }
    assert set(said) == {"untimed", "api"}
    assert "tuned-lora@2 records no timings.train_seconds" in said["untimed"]
    assert "no GPU-hour price" in said["api"]


async def test_the_judge_scores_each_answer_and_its_cost_is_apart(stack: Stack) -> None:
    async with GatewayClient(stack.url, stack.runner_key) as client:
        runner = TrialRunner(client, scorer=score_case, summariser=summarise_trial)
        plan = TrialPlan("docs", "docs-eval", arms=["rag"], concurrency=3, judge="grader")
        outcome = await runner.run(plan)
        cases = {c.case_id: c for c in await client.cases(outcome.record.id, "rag")}
    rag = arm(outcome.record, "rag")
    assert (rag.judge_faithfulness.value, rag.judge_faithfulness.n) == ((0.8 + 1) / 2, 2)
    assert (rag.judge_correctness.value, rag.judge_correctness.n) == ((0.6 + 0.5) / 2, 2)
    assert (rag.judge_cost_usd, rag.judge_unscored) == (3 * 4.0, 1)
    assert cases["q2"].judge_error == "unparseable"
    assert cases["q2"].scores.judge_faithfulness is None
    assert cases["q2"].scores.judge_correctness is None
    assert cases["q0"].scores.judge_faithfulness == 0.8
    assert all(c.judge_cost_usd == 4.0 for c in cases.values())
    assert rag.cost_per_1k_requests_usd.value == pytest.approx(
        sum(c.cost_usd for c in cases.values()) / 3 * 1000, rel=1e-9
    )
    assert all(0 < c.cost_usd < 1 for c in cases.values())  # the arm's own, judge apart
    # the judge read the question, the answer, the reference and the cited passages' texts
    [asked] = [
        r.body["messages"][-1]["content"]
        for r in stack.judge.requests
        if "Question: where does gamma come from" in r.body["messages"][-1]["content"]
    ]
    assert "Reference answer: gamma source" in asked
    assert "Answer to grade: The gamma source." in asked
    assert "] Gamma rays come from the gamma source." in asked
    with stack.http() as http:
        stored = http.get(f"/v1/trials/{outcome.record.id}/cases", params={"arm": "rag"}).text
        metrics = http.get("/metrics").text
    assert "Gamma rays" not in stored  # the passages' texts are not kept with the results
    grader = {"feature": "grader", "route": "prompt", "variant": "", "status": "ok"}
    assert sample_value(metrics, "trivium_requests_total", **grader, traffic="trial") == 3
    with stack.http(stack.app_key) as product:
        answered = product.post(
            "/v1/features/docs/invoke", json={"input": {"case": "p", "question": "gamma"}}
        )
    assert answered.status_code == 200, answered.text
    assert all("text" not in c for c in answered.json()["citations"])  # production: no texts
