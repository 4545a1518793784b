"""The template admin API of a real gateway process, over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, running, start_gateway, trivium_env
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

QA = "Q: {{ question }}\nA:"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def publish(
    http: httpx.Client, name: str, body: str = QA, variables: list[str] | None = None
) -> Any:
    response = http.post(
        f"/v1/templates/{name}/versions",
        json={"body": body, "metadata": {"variables": variables or ["question"]}},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def assert_problem(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    if field is not None:
        assert body["field"] == field
    return body


def test_publish_is_idempotent_by_content(http: httpx.Client) -> None:
    name = unique()
    first = http.post(
        f"/v1/templates/{name}/versions", json={"body": QA, "metadata": {"variables": ["question"]}}
    )
    assert first.status_code == 201
    assert first.json()["version"] == 1
    again = http.post(
        f"/v1/templates/{name}/versions", json={"body": QA, "metadata": {"variables": ["question"]}}
    )
    assert again.status_code == 200
    assert again.json() == {**first.json(), "created": False}
    second = publish(http, name, QA + " ")
    assert second["version"] == 2
    assert second["sha256"] != first.json()["sha256"]


def test_promote_rollback_history_diff_render(http: httpx.Client) -> None:
    name = unique()
    for body in (QA, QA + " (v2)", QA + " (v3)"):
        publish(http, name, body)
    assert (
        http.put(
            f"/v1/templates/{name}/labels/production", json={"version": 1, "expected_current": 0}
        ).status_code
        == 200
    )
    moved = http.put(
        f"/v1/templates/{name}/labels/production", json={"version": 3, "expected_current": 1}
    ).json()
    assert moved == {
        "name": name,
        "label": "production",
        "from_version": 1,
        "to_version": 3,
        "changed": True,
    }
    assert http.get(f"/v1/templates/{name}/labels/production").json()["version"] == 3

    rolled = http.post(f"/v1/templates/{name}/labels/production/rollback", json={}).json()
    assert (rolled["from_version"], rolled["to_version"]) == (3, 1)
    assert http.get(f"/v1/templates/{name}/labels/production").json()["version"] == 1

    detail = http.get(f"/v1/templates/{name}").json()
    assert detail["labels"] == {"production": 1}
    assert [v["version"] for v in detail["versions"]] == [1, 2, 3]

    history = http.get(
        f"/v1/templates/{name}/history", headers={"x-trivium-actor": "ignored-reader"}
    ).json()
    assert [e["action"] for e in history] == ["publish"] * 3 + ["promote", "promote", "rollback"]
    assert history[-1]["from"] == 3
    assert history[-1]["to"] == 1
    assert http.get(f"/v1/templates/{name}/history", params={"limit": 2}).json() == history[-2:]

    diff = http.get(f"/v1/templates/{name}/diff", params={"from": "production", "to": "3"}).json()
    assert f"--- {name}@1" in diff["diff"]
    assert f"+++ {name}@3" in diff["diff"]
    assert "-A:\n+A: (v3)\n" in diff["diff"]

    rendered = http.post(
        f"/v1/templates/{name}/render", json={"variables": {"question": "why?"}}
    ).json()
    assert rendered == {"template": f"{name}@1", "text": "Q: why?\nA:"}
    listed = {t["name"]: t for t in http.get("/v1/templates").json()}
    assert listed[name]["latest_version"] == 3


def test_concurrent_promote_conflict_is_409(http: httpx.Client) -> None:
    name = unique()
    publish(http, name)
    publish(http, name, QA + "!")
    http.put(f"/v1/templates/{name}/labels/canary", json={"version": 1})
    ok = http.put(f"/v1/templates/{name}/labels/canary", json={"version": 2, "expected_current": 1})
    assert ok.status_code == 200
    lost = http.put(
        f"/v1/templates/{name}/labels/canary", json={"version": 2, "expected_current": 1}
    )
    body = assert_problem(lost, 409, "label_conflict", "expected_current")
    assert body["current"] == 2


def test_rollback_past_first_entry_is_409(http: httpx.Client) -> None:
    name = unique()
    publish(http, name)
    http.put(f"/v1/templates/{name}/labels/production", json={"version": 1})
    response = http.post(f"/v1/templates/{name}/labels/production/rollback", json={})
    assert_problem(response, 409, "no_earlier_version", "label")


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        ("/v1/templates/nope-404", 404, "unknown_artifact", "name"),
        ("/v1/templates/BAD!name", 400, "malformed_reference", "name"),
        ("/v1/templates/nope-404/history", 404, "unknown_artifact", "name"),
        ("/v1/templates/nope-404/versions/1", 404, "unknown_artifact", "name"),
    ],
)
def test_unknown_and_malformed_names(
    http: httpx.Client, path: str, status: int, code: str, field: str
) -> None:
    assert_problem(http.get(path), status, code, field)


def test_unknown_label_and_version(http: httpx.Client) -> None:
    name = unique()
    publish(http, name)
    assert_problem(http.get(f"/v1/templates/{name}/labels/staging"), 404, "unknown_label", "label")
    assert_problem(http.get(f"/v1/templates/{name}/versions/9"), 404, "unknown_version", "version")
    response = http.put(f"/v1/templates/{name}/labels/production", json={"version": 9})
    assert_problem(response, 404, "unknown_version", "version")
    diff = http.get(f"/v1/templates/{name}/diff", params={"from": "a@@b", "to": "1"})
    assert_problem(diff, 400, "malformed_reference")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"metadata": {}}, "body"),
        ({"body": 3}, "body"),
        ({"body": "x", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_publish_body_names_the_field(
    http: httpx.Client, payload: dict[str, Any], field: str
) -> None:
    response = http.post(f"/v1/templates/{unique()}/versions", json=payload)
    body = assert_problem(response, 400, "invalid_input")
    assert field in body["detail"] or body.get("field") == field


def test_template_that_does_not_compile_or_uses_undeclared_variables(http: httpx.Client) -> None:
    name = unique()
    broken = http.post(
        f"/v1/templates/{name}/versions", json={"body": "{% for x in %}", "metadata": {}}
    )
    assert_problem(broken, 400, "invalid_artifact", "body")
    undeclared = http.post(
        f"/v1/templates/{name}/versions",
        json={"body": "{{ question }} {{ secret }}", "metadata": {"variables": ["question"]}},
    )
    body = assert_problem(undeclared, 400, "invalid_artifact", "metadata.variables")
    assert body["undeclared"] == ["secret"]
    assert http.get(f"/v1/templates/{name}").status_code == 404  # nothing was stored


def test_render_with_missing_or_extra_variable_names_it(http: httpx.Client) -> None:
    name = unique()
    publish(http, name)
    http.put(f"/v1/templates/{name}/labels/production", json={"version": 1})
    missing = http.post(f"/v1/templates/{name}/render", json={"variables": {}})
    assert assert_problem(missing, 400, "render_error", "input.question")["missing"] == ["question"]
    extra = http.post(
        f"/v1/templates/{name}/render", json={"variables": {"question": "q", "evil": 1}}
    )
    assert assert_problem(extra, 400, "render_error", "input.evil")["unexpected"] == ["evil"]


def test_oversize_bodies_are_refused(http: httpx.Client) -> None:
    name = unique()
    big_template = http.post(
        f"/v1/templates/{name}/versions", json={"body": "x" * (64 * 1024 + 1), "metadata": {}}
    )
    assert_problem(big_template, 413, "artifact_too_large", "body")
    huge_request = http.post(
        f"/v1/templates/{name}/versions",
        content=b'{"body": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert huge_request.status_code == 413
    assert http.get(f"/v1/templates/{name}").status_code == 404


def test_request_id_is_echoed_or_generated(http: httpx.Client) -> None:
    assert (
        http.get("/healthz", headers={"x-request-id": "req-42"}).headers["x-request-id"] == "req-42"
    )
    generated = http.get("/healthz", headers={"x-request-id": "bad id with spaces"}).headers[
        "x-request-id"
    ]
    assert len(generated) == 32
    assert " " not in generated


def test_health_readiness_metrics_and_openapi(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["checks"] == {"registry_store": True, "registry_invalidation": True}
    name = unique()
    publish(http, name)
    http.put(f"/v1/templates/{name}/labels/production", json={"version": 1})
    for _ in range(3):
        http.get(f"/v1/templates/{name}/labels/production")
    metrics = http.get("/metrics").text
    assert 'trivium_registry_cache_requests_total{kind="template",result="hit"}' in metrics
    assert "trivium_http_requests_total" in metrics
    assert 'path="/v1/templates/{name}/labels/{label}"' in metrics  # grouped: bounded labels
    assert f"/v1/templates/{name}/" not in metrics
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert "/v1/templates/{name}/labels/{label}" in paths


def test_admin_tokens_guard_writes_and_name_the_actor(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> None:
    tmp = tmp_path_factory.mktemp("auth")
    env = trivium_env(
        tmp, redis_server.url, TRIVIUM_GATEWAY__ADMIN_TOKENS='{"alice": "s3cret-token"}'
    )
    with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
        payload = {"body": QA, "metadata": {"variables": ["question"]}}
        anonymous = http.post("/v1/templates/guarded/versions", json=payload)
        assert_problem(anonymous, 401, "unauthorized")
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = http.post(
            "/v1/templates/guarded/versions",
            json=payload,
            headers={"authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401
        ok = http.post(
            "/v1/templates/guarded/versions",
            json=payload,
            headers={"authorization": "Bearer s3cret-token"},
        )
        assert ok.status_code == 201
        assert http.get("/v1/templates/guarded/history").json()[0]["actor"] == "alice"


def test_redis_outage_serves_cached_templates_and_refuses_writes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("outage")
    port = free_tcp_port()
    redis = RedisServerProcess(tmp / "redis", port=port, persist=False)
    redis.start()
    try:
        with (
            running(start_gateway(tmp, trivium_env(tmp, redis.url))) as gateway,
            gateway.client() as http,
        ):
            publish(http, "steady")
            http.put("/v1/templates/steady/labels/production", json={"version": 1})
            assert (
                http.get("/v1/templates/steady/labels/production").status_code == 200
            )  # now cached
            redis.stop()

            cached = http.get("/v1/templates/steady/labels/production")
            assert cached.status_code == 200
            assert cached.json()["version"] == 1
            write = http.post("/v1/templates/steady/versions", json={"body": "new", "metadata": {}})
            assert_problem(write, 503, "registry_unavailable")
            assert write.headers["retry-after"] == "2"
            uncached = http.get("/v1/templates/other/labels/production")
            assert_problem(uncached, 503, "registry_unavailable")
            # Degraded, not unready: cached templates still serve (no policy: none needed).
            ready = http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            assert "registry_store" in ready.json()["failing"]
            assert ready.json()["checks"]["registry_store"] is False
            assert http.get("/healthz").status_code == 200
    finally:
        redis.stop()


def test_sigterm_shuts_down_gracefully(gateway: ServiceProcess) -> None:
    # Runs last in this module (pytest keeps file order): stopping the shared gateway.
    assert gateway.stop() == 0
    log = gateway.log_path.read_text()
    assert "Application shutdown complete" in log
