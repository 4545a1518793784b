"""Caller keys, scopes, limits and budgets through two real gateway processes sharing one
Redis (the replicas of one deployment), in `auth.mode: keys`."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.e2e.conftest import (
    TRIVIUM,
    ServiceProcess,
    publish_template,
    run_trivium,
    running,
    start_gateway,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.processes import eventually
from tests.support.prometheus import sample_value
from trivium.cli.stack import StackState, read_live_state
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

ADMIN_TOKEN = "auth-bootstrap-token"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SETTLE_FLUSH_S = 0.2
POLICY = """
version: 1
upstreams:
  hosted:
    url: "{url}"
    model: hosted-model
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
features:
  faq:
    route: prompt
    template: ask@production
    upstream: hosted
    limits: {{max_tokens: 40}}
  billing:
    route: prompt
    template: ask@production
    upstream: hosted
  strict:
    route: prompt
    template: ask@production
    upstream: hosted
    callers: {{rpm_per_key: 3, on_redis_down: fail_closed}}
"""


@dataclass
class Replicas:
    one: ServiceProcess
    two: ServiceProcess
    redis_url: str

    def both(self) -> tuple[ServiceProcess, ServiceProcess]:
        return self.one, self.two

    def create_key(self, **spec: Any) -> tuple[str, dict[str, Any]]:
        body = {"owner": "team-test", "features": ["faq"], **spec}
        with self.one.client() as http:
            response = http.post("/v1/keys", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        created = response.json()
        return created["key"], created["record"]


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("auth")
    policy_file = tmp / "policy.yaml"
    with OpenAIUpstream(model="hosted-model") as hosted:
        policy_file.write_text(POLICY.format(url=hosted.url))
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="shared-pepper-of-the-deployment",
            TRIVIUM_GATEWAY__ADMIN_TOKENS=f'{{"ops": "{ADMIN_TOKEN}"}}',
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__STATS__FLUSH_S="0.1",
            TRIVIUM_GATEWAY__LIMITS__SETTLE_FLUSH_S=str(SETTLE_FLUSH_S),
        )
        with (
            running(start_gateway(tmp, env)) as one,
            running(start_gateway(tmp, env)) as two,
            one.client() as http,
        ):
            publish_template(http, "ask", "Question: {{ question }}", ["question"], ADMIN)
            yield Replicas(one, two, redis_server.url)


def ask(
    gateway: ServiceProcess, key: str | None, feature: str = "faq", **extra: Any
) -> httpx.Response:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    with gateway.client() as http:
        return http.post(
            f"/v1/features/{feature}/invoke",
            json={"input": {"question": "where is my refund?"}, **extra},
            headers=headers,
        )


def problem(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return {k: body.get(k) for k in ("status", "code", "detail", "field")}


# -- bad credentials -----------------------------------------------------------------------


def test_missing_malformed_unknown_and_wrong_secret_keys_are_401(replicas: Replicas) -> None:
    key, record = replicas.create_key(name="probe-target")
    missing = ask(replicas.one, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["code"] == "unauthorized"
    assert missing.json()["field"] == "authorization"
    wrong_secret = f"trv_{record['id']}_{'A' * 43}"
    answers = [
        ask(replicas.one, bad)
        for bad in ("not-a-key", "trv_zzzzzzzzzzzz_" + "B" * 43, wrong_secret, key + "x")
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({str(problem(r)) for r in answers}) == 1, [r.text for r in answers]
    assert ask(replicas.one, key).status_code == 200


def test_an_oversize_authorization_header_is_431(replicas: Replicas) -> None:
    response = ask(replicas.one, "x" * 2000)
    assert response.status_code == 431
    assert response.json()["field"] == "authorization"


def test_openai_routes_take_the_key_as_api_key(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="openai-client", features=["faq", "billing"])
    client = openai.OpenAI(base_url=f"{replicas.two.base_url}/v1", api_key=key, max_retries=0)
    answer = client.chat.completions.create(
        model="faq", messages=[{"role": "user", "content": "hello"}]
    )
    assert answer.choices[0].message.content
    assert sorted(m.id for m in client.models.list()) == ["billing", "faq"]
    stranger = openai.OpenAI(
        base_url=f"{replicas.two.base_url}/v1", api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as refused:
        stranger.chat.completions.create(
            model="faq", messages=[{"role": "user", "content": "hello"}]
        )
    assert refused.value.status_code == 401
    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        client.chat.completions.create(
            model="strict", messages=[{"role": "user", "content": "hello"}]
        )
    assert "strict" in str(forbidden.value)


# -- scopes and features -------------------------------------------------------------------


def test_features_and_scopes_are_enforced(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="faq-only")
    other = ask(replicas.one, key, feature="billing")
    assert other.status_code == 403
    assert other.json()["code"] == "forbidden_feature"
    assert "billing" in other.json()["detail"]
    auth = {"authorization": f"Bearer {key}"}
    with replicas.one.client() as http:
        for method, path in (
            ("GET", "/v1/policy"),
            ("GET", "/v1/stats"),
            ("GET", "/v1/templates/ask/history"),
            ("POST", "/v1/policy:reload"),
            ("GET", "/v1/keys"),
        ):
            refused = http.request(method, path, headers=auth)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["code"] == "missing_scope"
        assert http.get("/v1/policy").status_code == 401
        reader, _ = replicas.create_key(name="dashboards", scopes=["read"])
        read = {"authorization": f"Bearer {reader}"}
        assert http.get("/v1/policy", headers=read).status_code == 200
        assert http.get("/v1/templates/ask/history", headers=read).status_code == 200
        publish = http.post(
            "/v1/templates/ask/versions",
            json={"body": "Q: {{ question }}", "metadata": {"variables": ["question"]}},
            headers=read,
        )
        assert publish.status_code == 403
        assert publish.json()["code"] == "missing_scope"
        assert http.get("/healthz").status_code == 200
        assert http.get("/metrics").status_code == 200


def test_publishing_a_dataset_needs_the_trials_scope(replicas: Replicas) -> None:
    rows = '{"id": "c1", "input": {"question": "q"}, "expected": {"answer": "a"}}\n'
    ndjson = {"content-type": "application/x-ndjson"}
    reader, _ = replicas.create_key(name="dataset-reader", scopes=["read"])
    runner, _ = replicas.create_key(name="trial-runner", scopes=["trials"])
    with replicas.one.client() as http:
        path = "/v1/datasets/auth-eval/versions"
        refused = http.post(
            path, content=rows, headers={**ndjson, "authorization": f"Bearer {reader}"}
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "missing_scope"
        assert "trials" in refused.json()["detail"]
        assert http.post(path, content=rows, headers=ndjson).status_code == 401
        made = http.post(
            path, content=rows, headers={**ndjson, "authorization": f"Bearer {runner}"}
        )
        assert made.status_code in (200, 201), made.text
        read = {"authorization": f"Bearer {reader}"}
        page = http.get("/v1/datasets/auth-eval/rows", headers=read)
        assert page.status_code == 200, page.text
        assert [r["id"] for r in page.json()["rows"]] == ["c1"]
        no_read = http.get("/v1/datasets", headers={"authorization": f"Bearer {runner}"})
        assert no_read.status_code == 403


def test_key_admin_lifecycle_is_audited_and_reaches_every_replica(replicas: Replicas) -> None:
    key, record = replicas.create_key(name="lifecycle", features=["*"])
    key_id = record["id"]
    assert ask(replicas.two, key).status_code == 200
    with replicas.one.client() as http:
        listed = http.get("/v1/keys", headers=ADMIN).json()
        assert any(k["id"] == key_id for k in listed)
        assert key.split("_", 2)[2] not in str(listed)
        rotated = http.post(f"/v1/keys/{key_id}/rotate", headers=ADMIN)
        assert rotated.status_code == 200, rotated.text
        new_key = rotated.json()["key"]
    assert _refused_within(replicas.two, key, 1.0)
    assert ask(replicas.two, new_key).status_code == 200
    with replicas.one.client() as http:
        assert http.post(f"/v1/keys/{key_id}/revoke", headers=ADMIN).status_code == 200
        history = http.get(f"/v1/keys/{key_id}/history", headers=ADMIN).json()
        shown = http.get(f"/v1/keys/{key_id}", headers=ADMIN).json()
    assert _refused_within(replicas.two, new_key, 1.0)
    assert _refused_within(replicas.one, new_key, 1.0)
    assert [(h["action"], h["actor"]) for h in history] == [
        ("create", "ops"),
        ("rotate", "ops"),
        ("revoke", "ops"),
    ]
    assert shown["status"] == "revoked"
    assert "secret_hash" not in shown


def _refused_within(gateway: ServiceProcess, key: str, seconds: float) -> bool:
    """Whether a request started within `seconds` from now was refused."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ask(gateway, key).status_code == 401:
            return True
        time.sleep(0.02)
    return False


def test_an_expired_key_is_401(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="short-lived", expires_at=time.time() + 1.0)
    assert ask(replicas.one, key).status_code == 200
    time.sleep(1.1)
    assert ask(replicas.one, key).status_code == 401


# -- limits and budgets --------------------------------------------------------------------


def test_rpm_is_exact_across_two_replicas(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="exact-100", rpm=100)
    gateways = [replicas.one, replicas.two] * 75

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda g: ask(g, key), gateways))
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 100, statuses
    assert statuses.count(429) == 50
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    admitted = next(a for a in answers if a.status_code == 200)
    assert admitted.headers["x-ratelimit-limit-requests"] == "100"
    assert "x-ratelimit-reset-requests" in admitted.headers


def test_streams_carry_the_rate_limit_headers(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="streamer", rpm=5)
    with (
        replicas.two.client() as http,
        http.stream(
            "POST",
            "/v1/features/faq/invoke",
            json={"input": {"question": "q"}, "stream": True},
            headers={"authorization": f"Bearer {key}"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-remaining-requests"] == "4"
        assert "event: summary" in response.read().decode()


def test_tokens_are_reserved_then_settled_with_what_was_used(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="tokens", tpm=100)
    first = ask(replicas.one, key, max_tokens=40)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "60"  # 40 reserved
    used = first.json()["usage"]["total_tokens"]
    assert 0 < used < 40
    time.sleep(SETTLE_FLUSH_S * 3)
    second = ask(replicas.two, key, max_tokens=40)
    assert second.status_code == 200
    assert second.headers["x-ratelimit-remaining-tokens"] == str(100 - used - 40)


def test_a_spent_daily_budget_is_429_until_the_day_ends(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="thrifty", budget_usd_day=0.000001)
    first = ask(replicas.one, key)
    assert first.status_code == 200
    assert first.json()["cost_usd"] > 0.000001
    time.sleep(SETTLE_FLUSH_S * 3)
    for gateway in replicas.both():
        refused = ask(gateway, key)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "budget_exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 86_400


def test_a_feature_limit_per_key_counts_beside_the_keys_own(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="strict-caller", features=["strict", "faq"])
    statuses = [ask(g, key, feature="strict").status_code for g in replicas.both() * 2]
    assert statuses == [200, 200, 200, 429]
    assert ask(replicas.one, key).status_code == 200  # the key itself is not limited


def test_one_redis_round_trip_per_limited_request(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="round-trips", rpm=10_000, tpm=10_000_000)
    assert ask(replicas.one, key).status_code == 200  # the key is now cached
    client = redis.Redis.from_url(replicas.redis_url)
    before = client.info("commandstats")
    started = time.monotonic()
    n = 30
    with replicas.one.client() as http:
        for _ in range(n):
            response = http.post(
                "/v1/features/faq/invoke",
                json={"input": {"question": "q"}},
                headers={"authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200
    elapsed = time.monotonic() - started
    after = client.info("commandstats")

    def calls(name: str) -> int:
        return int(after.get(name, {}).get("calls", 0)) - int(before.get(name, {}).get("calls", 0))

    # One admission script per request; a settlement rides on the next one unless it waited
    # longer than settle_flush_s (then the background flush writes it).
    flushes = int(elapsed / SETTLE_FLUSH_S) + 2
    assert n <= calls("cmdstat_evalsha") + calls("cmdstat_eval") <= n + flushes
    assert calls("cmdstat_get") == 0  # no key read: the key is served from the cache


# -- what never leaks ----------------------------------------------------------------------


def test_no_secret_in_logs_or_metrics_and_stats_by_key(replicas: Replicas) -> None:
    key, _ = replicas.create_key(name="leak-check")
    secret = key.split("_", 2)[2]
    for gateway in replicas.both():
        assert ask(gateway, key).status_code == 200
    assert ask(replicas.one, "trv_zzzzzzzzzzzz_" + "C" * 43).status_code == 401
    time.sleep(0.3)
    with replicas.one.client() as http:
        metrics = http.get("/metrics").text
        stats = http.get("/v1/stats", params={"group_by": "key"}, headers=ADMIN).json()
    served = sample_value(metrics, "trivium_caller_requests_total", key="leak-check", status="ok")
    assert served == 1
    assert sample_value(metrics, "trivium_caller_rejections_total", reason="unauthenticated") >= 1
    assert stats["keys"]["leak-check"]["count"] == 2
    for gateway in replicas.both():
        log = gateway.log_path.read_text()
        assert secret not in log
        assert key not in log
    assert secret not in metrics
    assert "C" * 43 not in metrics


# -- exposure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "gateway.admin_tokens"),
        ({"TRIVIUM_GATEWAY__ADMIN_TOKENS": '{"ops": "t"}'}, "gateway.auth.pepper"),
    ],
)
def test_a_gateway_exposed_without_credentials_refuses_to_start(
    tmp_path: Path, extra: dict[str, str], named: str
) -> None:
    env = trivium_env(
        tmp_path,
        "redis://127.0.0.1:1/0",
        TRIVIUM_GATEWAY__HOST="0.0.0.0",
        TRIVIUM_GATEWAY__AUTH__MODE="keys",
        **extra,
    )
    result = run_trivium(env, "gateway", "serve")
    assert result.returncode != 0
    assert named in result.stderr
    assert "gateway cannot start" in result.stderr


# -- trivium up ----------------------------------------------------------------------------


def test_up_on_loopback_creates_a_demo_key_and_prints_it(tmp_path: Path) -> None:
    env = trivium_env(
        tmp_path,
        None,
        TRIVIUM_GATEWAY__AUTH__MODE="keys",
        TRIVIUM_GATEWAY__PORT=str(free_tcp_port()),
        TRIVIUM_UP__METRICS_PORT="0",
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*TRIVIUM, "up", "--skip-model", "--skip-retriever"], env=env, stderr=out
        )
    try:

        def running() -> StackState | None:
            assert process.poll() is None, log.read_text()
            state = read_live_state(tmp_path)
            return state if state is not None and state.phase == "running" else None

        stack = eventually(running, 60, "the stack to run")
        printed = re.search(r"export TRIVIUM_KEY=(trv_\S+)", log.read_text())
        assert printed, log.read_text()
        key = printed.group(1)
        assert (tmp_path / "auth" / "demo_key").read_text().strip() == key
        assert 'Bearer $TRIVIUM_KEY" ' in log.read_text()
        with httpx.Client(base_url=stack.services["gateway"], timeout=10) as http:
            assert http.get("/v1/policy").status_code == 401
            auth = {"authorization": f"Bearer {key}"}
            assert http.get("/v1/policy", headers=auth).status_code == 200
            models = http.get("/v1/models", headers=auth).json()["data"]
            assert {m["id"] for m in models} >= {"marketing-copy", "docs-qa", "ticket-triage"}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()[-3000:]
