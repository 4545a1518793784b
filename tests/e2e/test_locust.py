"""The load test (`load/locustfile.py`) in a short headless run against a real stack.

The stack is `trivium up`'s, with the model service swapped for a fake OpenAI upstream
(tests/support/openai_upstream.py): the shipped demo policy (marketing-copy on the prompt road,
docs-qa on the rag road, ticket-triage on the finetune road), the shipped demo templates and a
registered `triage-lora` adapter in the registry, and a real retriever with this project's
README.md and docs/ ingested as the collection `docs`. So the locustfile's default mix runs
unchanged, and every road, the real retrieval included, is under load.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import (
    ServiceProcess,
    running,
    start_gateway,
    start_retriever,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from trivium.cli.demo import seed_demo_templates
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.model.adapters.kind import ADAPTER_KIND
from trivium.registry import TEMPLATE_KIND, Registry
from trivium.retriever.indexing.sources import expand_paths, read_documents

ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).with_name("locust")
FEATURES = ("docs-qa", "ticket-triage", "marketing-copy")


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A real retriever with the demo knowledge (README.md and docs/) in `docs`."""
    tmp = tmp_path_factory.mktemp("locust-retriever")
    paths = [ROOT / "README.md", ROOT / "docs"]
    documents = [doc for path, root in expand_paths(paths) for doc in read_documents(path, root)]
    with running(start_retriever(tmp)) as service:
        with httpx.Client(base_url=service.base_url, timeout=120) as http:
            assert http.post("/v1/collections", json={"name": "docs"}).status_code == 201
            body = {"documents": msgspec.to_builtins(documents)}
            ingest = http.post("/v1/collections/docs/documents", json=body)
            assert ingest.status_code == 200, ingest.text
        yield service


async def _seed_registry(redis_url: str, prefix: str, adapter_dir: Path) -> None:
    """What `trivium up` and the model service leave in the registry: the demo templates on
    `production`, and a `triage-lora` adapter on `production` (the fake upstream serves any
    model name, so the adapter directory only has to pass the publish checks)."""
    client = redis_from_url(redis_url, RedisSettings())
    settings = RegistrySettings(key_prefix=prefix)
    await seed_demo_templates(Registry(client, TEMPLATE_KIND, settings, cache=False))
    adapters = Registry(client, ADAPTER_KIND, settings, cache=False)
    metadata = {"base_model": "base", "weights_sha256": "0" * 64, "rank": 8}
    published = await adapters.publish("triage-lora", str(adapter_dir), metadata)
    await adapters.promote("triage-lora", "production", published.artifact.version)
    await client.aclose()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    retriever: ServiceProcess,
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("locust-gateway")
    with OpenAIUpstream(model="base", record=False) as upstream:
        demo = resources.files("trivium.cli").joinpath("demo_policy.yaml").read_text("utf-8")
        policy_file = tmp / "demo-policy.yaml"
        policy_file.write_text(demo.format(model_url=upstream.url.removesuffix("/v1")))
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
        )
        adapter_dir = tmp / "adapters" / "triage"
        adapter_dir.mkdir(parents=True)
        (adapter_dir / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
        asyncio.run(
            _seed_registry(redis_server.url, env["TRIVIUM_REGISTRY__KEY_PREFIX"], adapter_dir)
        )
        with running(start_gateway(tmp, env)) as service:
            yield service


def run_locust(gateway: ServiceProcess, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIVIUM_", "LOCUST_"))}
    command = [
        str(LOCUST),
        "-f",
        "load/locustfile.py",
        "--config",
        "load/locust.conf",
        "--host",
        gateway.base_url,
        "--csv",
        str(out / "run"),
        "--exit-code-on-error",
        "1",
        *extra,
    ]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    (out / "locust.log").write_text(result.stdout + result.stderr)  # kept for a failure's story
    return result


def read_stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}


def answered_count(stats: dict[tuple[str, str], dict[str, str]]) -> int:
    return sum(
        int(row["Request Count"])
        for (kind, name), row in stats.items()
        if kind == "POST" and name != "feedback"
    )


def test_a_short_headless_run_of_the_default_mix_has_no_failures(
    gateway: ServiceProcess, tmp_path: Path
) -> None:
    result = run_locust(
        gateway,
        tmp_path,
        *("--run-time", "8s", "--users", "5", "--spawn-rate", "5", "--trivium-wait", "0,0.2"),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    stats = read_stats(tmp_path / "run_stats.csv")
    total = stats[("", "Aggregated")]
    assert int(total["Failure Count"]) == 0, output[-4000:]

    def count(kind: str, name: str) -> int:
        row = stats.get((kind, name))
        return int(row["Request Count"]) if row else 0

    for feature in FEATURES:  # the mix: every feature task ran, natively or OpenAI-style
        ran = count("POST", f"invoke {feature}") + count("POST", f"openai {feature}")
        assert ran >= 3, (feature, sorted(stats))
    assert sum(count("POST", f"openai {feature}") for feature in FEATURES) > 0  # 1 user in 5
    assert count("POST", "invoke docs-qa") > count("POST", "invoke marketing-copy")
    assert 0 < count("POST", "feedback") < answered_count(stats)  # a share of the answers
    # per-route entries from the response bodies: one per answer, timed by timings_ms
    routes = {road: count("TRIVIUM", f"route:{road}") for road in ("rag", "prompt", "finetune")}
    assert all(routes.values()), routes
    answered = answered_count(stats)
    assert sum(routes.values()) == answered
    assert count("TRIVIUM", "route:rag") == count("TRIVIUM", "stage:retrieve")
    assert count("TRIVIUM", "stage:generate") == answered - count("TRIVIUM", "cache:hit")
    # No feature of the default mix declares variants in the demo policy (pubmed-qa's retrieval
    # modes are not in the mix), so no answer names one and no `variant:` entry is built.
    assert not [name for kind, name in stats if kind == "TRIVIUM" and name.startswith("variant:")]
    verdicts = sum(count("TRIVIUM", f"verdict:{v}") for v in ("passed", "flagged", "withheld"))
    assert verdicts == count("TRIVIUM", "route:rag")
    assert float(stats[("TRIVIUM", "route:rag")]["Average Response Time"]) > 0
    # cost and tokens per feature and route, which Locust's table cannot hold
    totals = json.loads((tmp_path / "run_trivium.json").read_text())
    assert set(totals) == {"docs-qa rag", "ticket-triage finetune", "marketing-copy prompt"}
    assert all(row["cost_usd"] > 0 and row["prompt_tokens"] > 0 for row in totals.values())
    assert "Cost and tokens per feature and route" in result.stdout


def test_a_mix_naming_a_feature_the_policy_lacks_stops_the_run(
    gateway: ServiceProcess, tmp_path: Path
) -> None:
    result = run_locust(
        gateway, tmp_path, "--run-time", "5s", "--trivium-mix", "docs-qa=1,support-kb=1:docs-qa"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "has no feature support-kb (it serves docs-qa, marketing-copy, pubmed-qa, ticket-triage)"
        in (result.stderr)
    )
    assert "HTTP 404" not in result.stdout + result.stderr  # stopped before the first user


# -- the locustfile's pieces, without Locust ------------------------------------------------


@pytest.fixture(scope="module")
def lf() -> ModuleType:
    """load/locustfile.py, imported without letting Locust monkey-patch this process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
        return importlib.import_module("load.locustfile")


def test_the_mix_is_inline_or_a_file(lf: ModuleType, tmp_path: Path) -> None:
    assert [(e.feature, e.weight, e.payloads) for e in lf.parse_mix("a=5, b=0,c=2:a")] == [
        ("a", 5, "a"),
        ("c", 2, "a"),
    ]
    mix_file = tmp_path / "mix.yaml"
    mix_file.write_text("features:\n  docs-qa: 3\n  support-kb: {weight: 1, payloads: docs-qa}\n")
    assert [(e.feature, e.weight, e.payloads) for e in lf.parse_mix(str(mix_file))] == [
        ("docs-qa", 3, "docs-qa"),
        ("support-kb", 1, "docs-qa"),
    ]
    for bad in ("a", "a=x", "a=0", f"{tmp_path}/missing.yaml"):
        with pytest.raises(lf.LoadConfigError):
            lf.parse_mix(bad)


def test_the_shipped_payloads_are_valid_requests(lf: ModuleType, tmp_path: Path) -> None:
    for feature in FEATURES:
        payloads = lf.load_payloads(ROOT / "load" / "payloads" / f"{feature}.jsonl")
        assert 20 <= len(payloads) <= 50, feature
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": {"q": "x"}}\n{"input": {"q": "y"}, "user": "u"}\n')
    with pytest.raises(lf.LoadConfigError, match=r"bad.jsonl:2: .*user: set by the load test"):
        lf.load_payloads(bad)


def test_chat_bodies_use_messages_when_one_variable_suffices(lf: ModuleType) -> None:
    assert lf.chat_body("t", {"input": {"ticket": "crash"}})["messages"] == [
        {"role": "user", "content": "crash"}
    ]
    body = lf.chat_body("m", {"input": {"product": "kettle", "tone": "warm"}, "max_tokens": 9})
    assert body["input"] == {"product": "kettle", "tone": "warm"}
    assert body["max_tokens"] == 9
    assert body["model"] == "m"


def test_answers_are_validated_and_failures_labelled(lf: ModuleType) -> None:
    native: dict[str, Any] = {
        "feature": "f",
        "route": "rag",
        "variant": None,
        "output": None,
        "verdict": "withheld",
        "timings_ms": {"total": 5.0},
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        "fallback": {"from": "rag", "reason": "retriever_unavailable"},
    }
    answer = lf.parse_answer("f", native, openai_route=False)
    assert (answer.route, answer.output, answer.prompt_tokens) == ("rag", None, 3)
    for broken in ({**native, "verdict": "passed"}, {**native, "feature": "g"}, {"route": "x"}):
        with pytest.raises(lf.InvalidAnswerError):
            lf.parse_answer("f", broken, openai_route=False)
    extension = {**native, "route": "prompt", "verdict": None}
    completion = {"choices": [{"message": {"content": "hi"}}], "trivium": extension}
    assert lf.parse_answer("f", completion, openai_route=True).output == "hi"
    problem = {"status": 503, "code": "overloaded"}
    assert lf.failure_label(503, problem, "1", None) == "HTTP 503 overloaded (Retry-After: 1s)"
    assert lf.failure_label(503, None, None, None) == "HTTP 503 (no Retry-After)"
    openai_error = {"error": {"code": "feature_not_found", "type": "invalid_request_error"}}
    assert lf.failure_label(404, openai_error, None, None) == "HTTP 404 feature_not_found"
    assert lf.failure_label(0, None, None, ConnectionRefusedError()).startswith("no response")
