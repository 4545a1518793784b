"""`GET /v1/features/{feature}/drift` and `POST .../drift/baseline` over a real gateway and
Redis, with the feature's retriever down (its side is then reported missing, with why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import msgspec
import pytest

from tests.e2e.conftest import ServiceProcess, running, start_gateway, trivium_env
from tests.support.trial_fixtures import POLICY
from trivium.common.contracts.drift import ANSWER_SIGNALS, BaselineReset, FeatureDrift
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

ADMIN = {"authorization": "Bearer drift-admin"}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("drift")
    policy_file = tmp / "policy.yaml"
    policy_file.write_text(POLICY)
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
        TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
        TRIVIUM_GATEWAY__ADMIN_TOKENS='{"ops": "drift-admin"}',
        TRIVIUM_GATEWAY__RETRIEVER__URL=f"http://127.0.0.1:{free_tcp_port()}",
        TRIVIUM_GATEWAY__DRIFT__BASELINE_SIZE="20",
    )
    with running(start_gateway(tmp, env)) as process:
        yield process


def test_a_feature_without_traffic_is_collecting_and_names_the_missing_retriever(
    gateway: ServiceProcess,
) -> None:
    with gateway.client() as http:
        answer = http.get("/v1/features/pubmedqa-rag/drift")
    assert answer.status_code == 200, answer.text
    report = msgspec.json.decode(answer.content, type=FeatureDrift)
    assert (report.baseline, report.baseline_n, report.baseline_size) == ("collecting", 0, 20)
    assert [s.name for s in report.signals] == list(ANSWER_SIGNALS)
    assert all(s.value is None and not s.drifting for s in report.signals)
    assert report.retrieval is None
    assert report.retrieval_error is not None
    assert "unreachable" in report.retrieval_error
    assert report.clusters == []


def test_baseline_reset_needs_the_admin_credential(gateway: ServiceProcess) -> None:
    with gateway.client() as http:
        refused = http.post("/v1/features/ticket-triage/drift/baseline")
        done = http.post("/v1/features/pubmedqa-rag/drift/baseline", headers=ADMIN)
    assert refused.status_code == 401, refused.text
    assert done.status_code == 200, done.text
    reset = msgspec.json.decode(done.content, type=BaselineReset)
    assert reset.reset == ["gateway"]
    assert reset.retrieval_error is not None


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("GET", "/v1/features/nope/drift", 404, "feature"),
        ("POST", "/v1/features/nope/drift/baseline", 404, "feature"),
        ("GET", "/v1/features/Not_A_Name!/drift", 400, "feature"),
    ],
)
def test_refusals_name_the_field(
    gateway: ServiceProcess, method: str, path: str, status: int, field: str
) -> None:
    with gateway.client() as http:
        answer = http.request(method, path, headers=ADMIN)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == field


def test_trivium_drift_show_and_baseline(gateway: ServiceProcess) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "trivium.cli.main",
                "drift",
                *args,
                "--gateway",
                gateway.base_url,
            ],
            env={**os.environ, "TRIVIUM_KEY": "drift-admin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = cli("show", "ticket-triage", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["baseline"] == "collecting"
    reset = cli("baseline", "ticket-triage")
    assert reset.returncode == 0, reset.stderr
    assert "ticket-triage: collecting a new baseline: gateway" in reset.stdout
    missing = cli("show", "nope")
    assert missing.returncode == 1
    assert "404 unknown_feature" in missing.stderr
