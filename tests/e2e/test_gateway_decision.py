"""`GET /v1/features/{feature}/decision` over a real gateway and Redis, with the shipped-like
trials written where the gateway's trials store keeps them; and `trivium decide` against it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import redis

from tests.e2e.conftest import ServiceProcess, running, start_gateway, trivium_env
from tests.support.trial_fixtures import (
    POLICY,
    classification_trial,
    retrieval_trial,
    store_trial,
)
from trivium.common.contracts.decision import Decision
from trivium.common.redis_server import RedisServerProcess

TRIAGE = "trl_triage000001"
PUBMED = "trl_pubmed000001"
RUNNING = "trl_running00001"


@dataclass
class Deployment:
    gateway: ServiceProcess
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("decision")
    policy_file = tmp / "policy.yaml"
    policy_file.write_text(POLICY)
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
        TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
    )
    prefix = env["TRIVIUM_REGISTRY__KEY_PREFIX"]
    client = redis.Redis.from_url(redis_server.url)
    triage, _ = classification_trial()
    pubmed, _ = retrieval_trial()
    store_trial(client, prefix, msgspec.structs.replace(triage, id=TRIAGE))
    store_trial(client, prefix, msgspec.structs.replace(pubmed, id=PUBMED))
    unfinished = msgspec.structs.replace(triage, id=RUNNING, status="running", summary=None)
    store_trial(client, prefix, unfinished)
    client.close()
    with running(start_gateway(tmp, env)) as gateway:
        yield Deployment(gateway, gateway.base_url, env)


def test_the_decision_of_the_triage_trial(deployment: Deployment) -> None:
    with deployment.gateway.client() as http:
        answer = http.get(f"/v1/features/ticket-triage/decision?trial={TRIAGE}")
    assert answer.status_code == 200, answer.text
    decision = msgspec.json.decode(answer.content, type=Decision)
    assert decision.trial.id == TRIAGE
    assert decision.trial.done == {"prompt": 60, "rag": 60, "finetune": 60}
    assert decision.recommendation.arm == "finetune"
    assert decision.requirements.monthly_requests == 2_000_000
    assert len(decision.checks) == 12  # 3 arms x 4 measured requirements


def test_the_decision_of_the_pubmed_trial(deployment: Deployment) -> None:
    with deployment.gateway.client() as http:
        answer = http.get("/v1/features/pubmedqa-rag/decision", params={"trial": PUBMED})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["recommendation"]["arm"] == "hybrid"
    assert body["recommendation"]["confident"] is False
    assert "a_need_for_citations_requires_a_retrieval_road" in [r["rule"] for r in body["rules"]]


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        (f"/v1/features/nope/decision?trial={TRIAGE}", 404, "unknown_feature", "feature"),
        (
            "/v1/features/ticket-triage/decision?trial=trl_000000000000",
            404,
            "unknown_trial",
            "trial",
        ),
        (f"/v1/features/pubmedqa-rag/decision?trial={TRIAGE}", 409, "trial_not_decidable", "trial"),
        (
            f"/v1/features/ticket-triage/decision?trial={RUNNING}",
            409,
            "trial_not_decidable",
            "trial",
        ),
        ("/v1/features/ticket-triage/decision?trial=not-an-id", 400, None, "trial"),
        ("/v1/features/ticket-triage/decision", 400, None, "trial"),
    ],
)
def test_refusals_name_the_field(
    deployment: Deployment, path: str, status: int, code: str | None, field: str
) -> None:
    with deployment.gateway.client() as http:
        answer = http.get(path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    if code is not None:
        assert problem["code"] == code
    assert field in json.dumps(problem)


def test_trivium_decide_renders_html_with_plots_and_json(
    deployment: Deployment, tmp_path: Path
) -> None:
    base = [sys.executable, "-m", "trivium.cli.main", "decide", "ticket-triage"]
    common = ["--trial", TRIAGE, "--gateway", deployment.url]
    out = tmp_path / "triage.html"
    done = subprocess.run(
        [*base, *common, "--format", "html", "--out", str(out)],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "Recommendation: finetune" in html
    assert html.count("<svg") >= 2
    as_json = subprocess.run(
        [*base, *common, "--format", "json"],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert as_json.returncode == 0, as_json.stderr
    assert msgspec.json.decode(as_json.stdout, type=Decision).trial.id == TRIAGE
    missing = subprocess.run(
        [*base, "--trial", "trl_000000000000", "--gateway", deployment.url],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode != 0
    assert "unknown_trial" in missing.stderr or "no trial" in missing.stderr
