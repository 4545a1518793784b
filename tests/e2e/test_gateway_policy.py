"""The routing policy of a real gateway process: read it, edit it, break it, reload it."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, run_trivium, running, start_gateway, trivium_env
from tests.support.prometheus import sample_value
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

EXAMPLE = Path(__file__).parents[2] / "deploy" / "policy.example.yaml"
ADMIN = {"authorization": "Bearer policy-admin-token"}


def reloads(http: httpx.Client, result: str) -> float:
    return sample_value(http.get("/metrics").text, "trivium_policy_reloads_total", result=result)


def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    shutil.copy(EXAMPLE, path)
    return path


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess, policy_file: Path
) -> Iterator[ServiceProcess]:
    """Reloads only on request (an hour between polls), so every count below is exact."""
    tmp = tmp_path_factory.mktemp("policy-gateway")
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
        TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
        TRIVIUM_GATEWAY__ADMIN_TOKENS='{"pm": "policy-admin-token"}',
    )
    with running(start_gateway(tmp, env)) as process:
        yield process


@pytest.fixture
def http(gateway: ServiceProcess) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_get_policy_shows_the_validated_policy(http: httpx.Client, policy_file: Path) -> None:
    body = http.get("/v1/policy").json()
    assert body["version"] == 7
    assert re.fullmatch(r"[0-9a-f]{16}", body["hash"])
    assert body["source"] == str(policy_file)
    assert abs(body["loaded_at"] - time.time()) < 600
    assert set(body["features"]) == {
        "marketing-copy",
        "support-kb",
        "ticket-triage",
        "policy-qa",
        "triage-with-context",
        "policy-quotes",
    }
    kb = body["features"]["support-kb"]
    assert kb["route"] == "rag"
    assert kb["retrieval"]["weights"] == {"dense": 1.0, "sparse": 0.5}
    assert kb["variants"]["canary-template"] == {
        "weight": 10.0,
        "route": None,
        "template": "support-answer@canary",
        "adapter": None,
        "retrieval": None,
        "upstream": None,
        "rollout": None,
    }
    assert kb["shadow"] == ["canary-template"]
    assert kb["fallback"] == ["prompt"]
    hosted = body["upstreams"]["hosted-small"]
    assert hosted["api_key_env"] == "HOSTED_API_KEY"
    assert hosted["price"] == {
        "kind": "tokens",
        "prompt_per_1k": 0.00015,
        "completion_per_1k": 0.0006,
    }
    metrics = http.get("/metrics").text
    assert sample_value(metrics, "trivium_policy_info", hash=body["hash"], version="7") == 1.0


def test_reload_needs_an_admin_token(http: httpx.Client) -> None:
    response = http.post("/v1/policy:reload")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_reload_of_an_untouched_file_is_unchanged(http: httpx.Client) -> None:
    current = http.get("/v1/policy").json()
    before = reloads(http, "unchanged")
    response = http.post("/v1/policy:reload", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "unchanged", "hash": current["hash"], "version": 7}
    assert reloads(http, "unchanged") == before + 1
    assert http.get("/v1/policy").json()["loaded_at"] == current["loaded_at"]


def test_an_edited_file_is_served_after_reload(http: httpx.Client, policy_file: Path) -> None:
    old = http.get("/v1/policy").json()
    before = reloads(http, "ok")
    edit(policy_file, "version: 7", "version: 8")
    edit(policy_file, "k: 8", "k: 12")
    response = http.post("/v1/policy:reload", headers=ADMIN)
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["result"] == "ok"
    assert outcome["version"] == 8
    assert outcome["hash"] != old["hash"]
    new = http.get("/v1/policy").json()
    assert new["hash"] == outcome["hash"]
    assert new["features"]["policy-qa"]["retrieval"]["k"] == 12
    metrics = http.get("/metrics").text
    assert sample_value(metrics, "trivium_policy_reloads_total", result="ok") == before + 1
    assert sample_value(metrics, "trivium_policy_info", hash=new["hash"], version="8") == 1.0
    assert f'hash="{old["hash"]}"' not in metrics


def test_a_bad_file_is_refused_with_every_error_and_the_old_policy_stays(
    http: httpx.Client, gateway: ServiceProcess, policy_file: Path
) -> None:
    good_text = policy_file.read_text()
    served = http.get("/v1/policy").json()
    before = reloads(http, "invalid")
    edit(policy_file, "k: 5", "k: 500")
    edit(policy_file, "upstream: local-model\n    retrieval", "upstream: gpu-farm\n    retrieval")
    try:
        response = http.post("/v1/policy:reload", headers=ADMIN)
    finally:
        policy_file.write_text(good_text)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "invalid_policy"
    assert problem["field"] == "features.support-kb.retrieval.k"
    assert problem["errors"] == [
        {"path": "features.support-kb.retrieval.k", "message": "must be between 1 and 100"},
        {
            "path": "features.triage-with-context.upstream",
            "message": "unknown upstream 'gpu-farm' (upstreams: hosted-small, local-model)",
        },
    ]
    assert http.get("/v1/policy").json() == served
    assert reloads(http, "invalid") == before + 1
    log = gateway.log_path.read_text()
    assert '"msg":"policy rejected: the last good policy keeps serving"' in log
    assert '"path":"features.support-kb.retrieval.k"' in log


def test_the_reload_route_is_in_the_openapi_schema(http: httpx.Client) -> None:
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert "/v1/policy:reload" in paths
    assert "/v1/policy" in paths


def test_a_saved_file_is_picked_up_without_a_request(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> None:
    tmp = tmp_path_factory.mktemp("policy-watch")
    path = tmp / "policy.yaml"
    shutil.copy(EXAMPLE, path)
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(path),
        TRIVIUM_GATEWAY__POLICY_POLL_S="0.1",
    )
    with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
        first = http.get("/v1/policy").json()
        edit(path, "max_tokens: 300", "max_tokens: 250")
        eventually(lambda: http.get("/v1/policy").json()["hash"] != first["hash"])
        copy = http.get("/v1/policy").json()["features"]["marketing-copy"]
        assert copy["limits"]["max_tokens"] == 250
        edit(path, "route: rag\n", "route: finetune\n")  # finetune needs an adapter
        eventually(lambda: reloads(http, "invalid") == 1)
        assert http.get("/v1/policy").json()["features"]["support-kb"]["route"] == "rag"
        assert reloads(http, "ok") == 1


def test_a_missing_policy_file_starts_with_no_features(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> None:
    tmp = tmp_path_factory.mktemp("policy-missing")
    missing = tmp / "nowhere.yaml"
    env = trivium_env(tmp, redis_server.url, TRIVIUM_GATEWAY__POLICY_FILE=str(missing))
    with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
        body = http.get("/v1/policy").json()
        assert (body["features"], body["upstreams"], body["source"]) == ({}, {}, str(missing))
    assert "policy file not found: serving an empty policy" in gateway.log_path.read_text()


def test_an_invalid_policy_file_stops_the_gateway_at_start(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> None:
    tmp = tmp_path_factory.mktemp("policy-invalid")
    path = tmp / "policy.yaml"
    path.write_text(EXAMPLE.read_text().replace("k: 5", "k: 0"))
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(path),
        TRIVIUM_GATEWAY__PORT=str(free_tcp_port()),
    )
    result = run_trivium(env, "gateway", "serve")
    assert result.returncode != 0
    assert "gateway cannot start: policy" in result.stderr
    assert "features.support-kb.retrieval.k: must be between 1 and 100" in result.stderr
    assert "Application startup complete" not in result.stderr
    assert "Traceback" not in result.stderr
