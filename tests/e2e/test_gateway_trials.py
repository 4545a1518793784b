"""Trials through a real gateway (`auth.mode: keys`) in front of scripted OpenAI upstreams:
trial traffic on the real invoke path (forced arms, the `trials` scope, no cache, no shadows,
labelled apart, out of /v1/stats) and the `/v1/trials` store the runner writes to."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    running,
    start_gateway,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.processes import eventually
from tests.support.prometheus import sample_value
from trivium.common.contracts.trials import TRIAL_ID_PATTERN
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

ADMIN = {"authorization": "Bearer trials-admin"}
POLICY = """
version: 1
upstreams:
  hosted:
    url: "{hosted}"
    model: hosted-model
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
  backup: {{url: "{backup}", model: backup-model}}
  dead: {{url: "{dead}", model: gone, connect_timeout_s: 0.5}}
features:
  triage:
    route: prompt
    template: ask@production
    upstream: hosted
    cache: {{ttl_s: 300}}
    variants: {{main: {{weight: 1}}, cheap: {{weight: 0, upstream: backup}}}}
    shadow: [cheap]
  resilient:
    route: prompt
    template: ask@production
    upstream: dead
    variants: {{main: {{weight: 1}}, spare: {{weight: 0, upstream: backup}}}}
    fallback: [spare]
  tried:
    route: prompt
    template: ask@production
    upstream: hosted
"""
TRIAL = "trl_abcdefghij12"


@dataclass
class Deployment:
    gateway: ServiceProcess
    hosted: OpenAIUpstream
    backup: OpenAIUpstream
    runner: dict[str, str]
    """Headers of a key with invoke, read and trials."""
    app: dict[str, str]
    """Headers of a key with invoke and read only."""
    redis: redis.Redis
    prefix: str

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway.base_url, timeout=30)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("trials")
    policy_file = tmp / "policy.yaml"
    dead = f"http://127.0.0.1:{free_tcp_port()}/v1"
    with (
        OpenAIUpstream(model="hosted-model") as hosted,
        OpenAIUpstream(model="backup-model") as backup,
    ):
        policy_file.write_text(POLICY.format(hosted=hosted.url, backup=backup.url, dead=dead))
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="trials-pepper",
            TRIVIUM_GATEWAY__ADMIN_TOKENS='{"ops": "trials-admin"}',
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__STATS__FLUSH_S="0.1",
            TRIVIUM_GATEWAY__UPSTREAM__MAX_RETRIES="0",
        )
        with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
            publish_template(http, "ask", "Question: {{ question }}", ["question"], ADMIN)
            keys = {}
            for name, scopes in (
                ("runner", ["invoke", "read", "trials"]),
                ("app", ["invoke", "read"]),
            ):
                created = http.post(
                    "/v1/keys",
                    json={"name": name, "owner": "qa", "features": ["*"], "scopes": scopes},
                    headers=ADMIN,
                )
                assert created.status_code == 201, created.text
                keys[name] = {"authorization": f"Bearer {created.json()['key']}"}
            client = redis.Redis.from_url(redis_server.url)
            yield Deployment(
                gateway,
                hosted,
                backup,
                keys["runner"],
                keys["app"],
                client,
                env["TRIVIUM_REGISTRY__KEY_PREFIX"],
            )
            client.close()


def invoke(
    d: Deployment, feature: str, headers: dict[str, str], question: str, **extra: Any
) -> httpx.Response:
    with d.http() as http:
        return http.post(
            f"/v1/features/{feature}/invoke",
            json={"input": {"question": question}, **extra},
            headers=headers,
        )


def trial(arm: str) -> dict[str, Any]:
    return {"trial": {"id": TRIAL, "arm": arm}}


# -- trial traffic through invoke ------------------------------------------------------------


def test_a_variant_arm_is_forced(deployment: Deployment) -> None:
    before = len(deployment.backup.requests)
    answer = invoke(deployment, "triage", deployment.runner, "forced cheap?", **trial("cheap"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["variant"] == "cheap"
    assert body["lineage"]["upstream"] == "backup"
    assert len(deployment.backup.requests) == before + 1


def test_a_road_arm_is_the_features_own_arm_on_that_road(deployment: Deployment) -> None:
    answer = invoke(deployment, "tried", deployment.runner, "forced road?", **trial("prompt"))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["route"], answer.json()["variant"]) == ("prompt", None)


def test_without_the_trials_scope_a_trial_is_403(deployment: Deployment) -> None:
    refused = invoke(deployment, "triage", deployment.app, "sneaky?", **trial("cheap"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["field"] == "trial"
    assert "'trials' scope" in refused.json()["detail"]
    # the same key without a trial tag is served
    assert invoke(deployment, "triage", deployment.app, "plain?").status_code == 200


def test_an_arm_the_feature_cannot_take_is_400_listing_its_arms(deployment: Deployment) -> None:
    refused = invoke(deployment, "triage", deployment.runner, "rag?", **trial("rag"))
    assert refused.status_code == 400, refused.text
    problem = refused.json()
    assert problem["field"] == "trial.arm"
    assert problem["arms"] == ["prompt", "main", "cheap"]  # rag needs a retrieval block
    malformed = invoke(deployment, "triage", deployment.runner, "x", trial={"id": "x", "arm": "a"})
    assert malformed.status_code == 400
    assert malformed.json()["field"] == "trial.id"


def test_fallback_still_applies_to_a_forced_arm(deployment: Deployment) -> None:
    answer = invoke(deployment, "resilient", deployment.runner, "dead?", **trial("prompt"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fallback"]["from"] == "prompt"
    assert body["variant"] == "spare"


def test_trial_traffic_neither_reads_nor_fills_the_cache_nor_shadows(
    deployment: Deployment,
) -> None:
    hosted, backup = deployment.hosted, deployment.backup
    hosted_before, backup_before = len(hosted.requests), len(backup.requests)
    for _ in range(2):
        answer = invoke(deployment, "triage", deployment.runner, "cache me?", **trial("main"))
        assert answer.json()["cached"] is False
    assert len(hosted.requests) == hosted_before + 2
    time.sleep(0.5)  # shadows run after the answer: none may have gone to `backup`
    assert len(backup.requests) == backup_before
    # Production's first request of the same input is a miss (the trial stored nothing), its
    # second a hit; and production traffic does shadow.
    first = invoke(deployment, "triage", deployment.app, "cache me?")
    second = invoke(deployment, "triage", deployment.app, "cache me?")
    assert (first.json()["cached"], second.json()["cached"]) == (False, True)
    eventually(lambda: len(backup.requests) > backup_before or None, 5, "the production shadow")


def test_trial_traffic_is_labelled_apart_and_out_of_the_stats_window(
    deployment: Deployment,
) -> None:
    for i in range(3):
        ok = invoke(deployment, "tried", deployment.runner, f"trial {i}?", **trial("prompt"))
        assert ok.status_code == 200
    with deployment.http() as http:
        metrics = http.get("/metrics").text
    labels = {"feature": "tried", "route": "prompt", "variant": "", "status": "ok"}
    assert sample_value(metrics, "trivium_requests_total", **labels, traffic="trial") >= 3
    assert sample_value(metrics, "trivium_requests_total", **labels, traffic="production") == 0
    tokens = {"feature": "tried", "route": "prompt", "kind": "prompt", "traffic": "trial"}
    assert sample_value(metrics, "trivium_tokens_total", **tokens) > 0
    fell_back = {"feature": "resilient", "from": "prompt", "to": "prompt", "reason": "connect"}
    assert sample_value(metrics, "trivium_fallbacks_total", **fell_back, traffic="trial") >= 1

    def stats() -> dict[str, Any]:
        with deployment.http() as http:
            answer = http.get("/v1/stats", params={"group_by": "key"}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    time.sleep(0.5)  # past a flush (0.1 s): trial requests would be in the window by now
    window = stats()
    assert "tried" not in window["features"]
    assert "runner" not in (window.get("keys") or {})
    assert invoke(deployment, "tried", deployment.app, "production?").status_code == 200
    seen = eventually(lambda: stats()["features"].get("tried"), 5, "production in the window")
    assert seen["prompt"]["count"] == 1


# -- the trials store --------------------------------------------------------------------------


def create(d: Deployment, **overrides: Any) -> httpx.Response:
    body = {"feature": "triage", "dataset": "triage-eval@1", "arms": ["prompt", "cheap"]}
    with d.http() as http:
        return http.post("/v1/trials", json={**body, "cases": 3, **overrides}, headers=d.runner)


def case(case_id: str, arm: str, output: str = "billing") -> dict[str, Any]:
    return {"case_id": case_id, "arm": arm, "ok": True, "status": 200, "output": output}


def put_cases(d: Deployment, trial_id: str, cases: list[dict[str, Any]]) -> httpx.Response:
    with d.http() as http:
        return http.put(f"/v1/trials/{trial_id}/cases", json={"cases": cases}, headers=d.runner)


def test_a_trial_is_created_filled_paged_and_finished(deployment: Deployment) -> None:
    created = create(deployment, note="first")
    assert created.status_code == 201, created.text
    record = created.json()
    trial_id = record["id"]
    assert re.fullmatch(TRIAL_ID_PATTERN, trial_id)
    assert (record["status"], record["done"], record["created_by"]) == (
        "running",
        {"prompt": 0, "cheap": 0},
        "runner",
    )
    cases = [case("c2", "prompt"), case("c10", "prompt"), case("c1", "prompt"), case("c1", "cheap")]
    stored = put_cases(deployment, trial_id, cases)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"stored": 4, "done": {"prompt": 3, "cheap": 1}}
    # Re-sent: replaces its result, counts once.
    again = put_cases(deployment, trial_id, [case("c1", "prompt", output="refund")])
    assert again.json()["done"] == {"prompt": 3, "cheap": 1}

    with deployment.http() as http:
        url = f"/v1/trials/{trial_id}/cases"
        first = http.get(url, params={"arm": "prompt", "limit": 2}, headers=deployment.app).json()
        rest = http.get(url, params={"arm": "prompt", "offset": 2}, headers=deployment.app).json()
        first_arm = http.get(url, headers=deployment.app).json()
    assert [c["case_id"] for c in first["cases"]] == ["c1", "c10"]  # case-id (byte) order
    assert first["cases"][0]["output"] == "refund"
    assert (first["total"], first["offset"], first["next_offset"]) == (3, 0, 2)
    assert [c["case_id"] for c in rest["cases"]] == ["c2"]
    assert first_arm["arm"] == "prompt"  # no `arm`: the trial's first
    assert rest["next_offset"] is None
    # One hash per trial and arm, field = case id: no value holds the whole trial.
    results = f"{deployment.prefix}:trial:{trial_id}:arm:prompt:results"
    assert deployment.redis.hlen(results) == 3

    with deployment.http() as http:
        paused = http.patch(
            f"/v1/trials/{trial_id}", json={"status": "interrupted"}, headers=deployment.runner
        )
        assert paused.json()["status"] == "interrupted"
        summary = {"arms": [], "comparisons": [], "computed_at": 1.5}
        finished = http.put(
            f"/v1/trials/{trial_id}/summary", json=summary, headers=deployment.runner
        )
        assert finished.status_code == 200, finished.text
        assert finished.json()["status"] == "finished"
        shown = http.get(f"/v1/trials/{trial_id}", headers=deployment.app).json()
        newer = create(deployment, feature="tried", arms=["prompt"]).json()["id"]
        listed = http.get("/v1/trials", headers=deployment.app).json()["trials"]
        by_feature = http.get(
            "/v1/trials", params={"feature": "triage"}, headers=deployment.app
        ).json()["trials"]
    assert shown["summary"] == summary
    assert shown["done"] == {"prompt": 3, "cheap": 1}
    assert [t["id"] for t in listed][:2] == [newer, trial_id]  # newest first
    assert all("summary" not in t for t in listed)
    assert trial_id in [t["id"] for t in by_feature]
    assert newer not in [t["id"] for t in by_feature]


def test_the_store_refuses_what_it_cannot_keep(deployment: Deployment) -> None:
    trial_id = create(deployment).json()["id"]
    checks: list[tuple[httpx.Response, int, str]] = []
    with deployment.http() as http:
        h = deployment.runner
        checks += [
            (create(deployment, arms=["prompt", "prompt"]), 400, "arms"),
            (create(deployment, cases=-1), 400, "cases"),
            (put_cases(deployment, trial_id, [case("a", "prompt"), case("b", "rag")]), 400,
             "cases[1].arm"),
            (put_cases(deployment, trial_id, [case("bad id", "prompt")]), 400,
             "cases[0].case_id"),
            (put_cases(deployment, trial_id, [case(f"c{i}", "prompt") for i in range(501)]),
             400, "cases"),
            (put_cases(deployment, "trl_000000000000", [case("a", "prompt")]), 404, "id"),
            (http.get("/v1/trials/trl_000000000000", headers=h), 404, "id"),
            (http.get("/v1/trials/not-a-trial", headers=h), 400, "id"),
            (http.get(f"/v1/trials/{trial_id}/cases", params={"arm": "rag"}, headers=h), 400,
             "arm"),
            (http.get("/v1/trials", params={"limit": 0}, headers=h), 400, "limit"),
            (http.patch(f"/v1/trials/{trial_id}", json={"status": "finished"}, headers=h), 400,
             "status"),
        ]  # fmt: skip
        too_big = http.put(
            f"/v1/trials/{trial_id}/cases",
            json={"cases": [case("a", "prompt", output="x" * (9 * 1024 * 1024))]},
            headers=h,
        )
        without_scope = http.post(
            "/v1/trials",
            json={"feature": "triage", "dataset": "d@1", "arms": ["prompt"], "cases": 1},
            headers=deployment.app,
        )
    for response, status, field in checks:
        assert response.status_code == status, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json().get("field") == field, (field, response.text)
    assert too_big.status_code == 413
    assert without_scope.status_code == 403
