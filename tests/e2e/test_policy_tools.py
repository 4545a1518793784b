"""The PM's policy tools against a real gateway: `POST /v1/policy:validate`, and the CLI's
`check` (also `--registry`) and `show --live` agreeing with what the gateway loads."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    run_trivium,
    running,
    start_gateway,
    trivium_env,
)
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.gateway.policy.routes import MAX_POLICY_BYTES
from trivium.model.adapters import ADAPTER_KIND
from trivium.registry import Registry

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "deploy" / "policy.example.yaml"
NEXT = ROOT / "deploy" / "policy.example.next.yaml"
BAD = sorted((ROOT / "tests" / "support" / "policies").glob("*.yaml"))
ADMIN = {"authorization": "Bearer policy-tools-token"}
YAML = {"content-type": "application/yaml"}


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy-tools") / "policy.yaml"
    shutil.copy(EXAMPLE, path)
    return path


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess, policy_file: Path
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("policy-tools-gateway")
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
        TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
        TRIVIUM_GATEWAY__ADMIN_TOKENS='{"pm": "policy-tools-token"}',
    )
    with running(start_gateway(tmp, env)) as process:
        yield process


@pytest.fixture
def http(gateway: ServiceProcess) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client


def cli_check(gateway: ServiceProcess, *args: str) -> tuple[int, list[dict[str, object]]]:
    result = run_trivium(gateway.env, "policy", "check", "--json", *args)
    return result.returncode, json.loads(result.stdout)


def test_validate_answers_as_check_does_and_applies_nothing(
    http: httpx.Client, gateway: ServiceProcess
) -> None:
    active = http.get("/v1/policy").json()
    response = http.post("/v1/policy:validate", content=NEXT.read_bytes(), headers=YAML)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"valid": True, "hash": body["hash"], "version": 8, "errors": [], "warnings": []}
    assert body["hash"] != active["hash"]
    assert http.get("/v1/policy").json() == active

    example = http.post("/v1/policy:validate", content=EXAMPLE.read_bytes(), headers=YAML).json()
    assert example["hash"] == active["hash"]  # the hash the gateway reports once it loads it
    code, [checked] = cli_check(gateway, str(EXAMPLE))
    assert code == 0
    assert {key: value for key, value in checked.items() if key != "file"} == example
    assert [w["path"] for w in example["warnings"]] == [
        "features.support-kb.fallback",
        "features.ticket-triage.fallback",
        "features.triage-with-context.fallback",
    ]


@pytest.mark.parametrize(
    "content_type", ["application/yaml", "text/yaml", "text/plain; charset=utf-8"]
)
def test_validate_reads_yaml_under_each_media_type(http: httpx.Client, content_type: str) -> None:
    response = http.post(
        "/v1/policy:validate", content=NEXT.read_bytes(), headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 8


def test_validate_reads_json(http: httpx.Client) -> None:
    document = yaml.safe_load(NEXT.read_text())
    response = http.post("/v1/policy:validate", json=document)
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is True


def test_validate_refuses_other_media_types(http: httpx.Client) -> None:
    for headers in ({"content-type": "application/x-www-form-urlencoded"}, {}):
        response = http.post("/v1/policy:validate", content=b"version: 1\n", headers=headers)
        assert response.status_code == 415, response.text
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == "unsupported_media_type"
        assert problem["field"] == "content-type"
        assert "application/yaml" in problem["detail"]


def test_validate_refuses_an_oversized_policy(http: httpx.Client) -> None:
    body = b"# padding\n" * (MAX_POLICY_BYTES // 10 + 1)
    response = http.post("/v1/policy:validate", content=body, headers=YAML)
    assert response.status_code == 413, response.text
    problem = response.json()
    assert problem["code"] == "payload_too_large"
    assert problem["field"] == "body"
    assert str(MAX_POLICY_BYTES) in problem["detail"]


def test_check_validate_and_reload_agree_on_each_bad_file(
    http: httpx.Client, gateway: ServiceProcess, policy_file: Path
) -> None:
    active = http.get("/v1/policy").json()["hash"]
    try:
        for bad in BAD:
            validated = http.post("/v1/policy:validate", content=bad.read_bytes(), headers=YAML)
            assert validated.status_code == 422, bad.name
            problem = validated.json()
            assert problem["code"] == "invalid_policy"
            code, [checked] = cli_check(gateway, str(bad))
            assert code == 1
            assert checked["errors"] == problem["errors"], bad.name
            shutil.copy(bad, policy_file)
            reloaded = http.post("/v1/policy:reload", headers=ADMIN)
            assert reloaded.status_code == 422, bad.name
            assert reloaded.json()["errors"] == problem["errors"], bad.name
    finally:
        shutil.copy(EXAMPLE, policy_file)
    assert http.post("/v1/policy:reload", headers=ADMIN).json()["result"] == "unchanged"
    assert http.get("/v1/policy").json()["hash"] == active


def test_show_live_is_the_gateways_policy(http: httpx.Client, gateway: ServiceProcess) -> None:
    active = http.get("/v1/policy").json()
    result = run_trivium(gateway.env, "policy", "show", "--live", gateway.base_url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == active
    text = run_trivium(gateway.env, "policy", "show", "--live", gateway.base_url).stdout
    assert f"policy {active['hash']}  version 7\n" in text
    assert "loaded: " in text


REFERENCES = """\
upstreams:
  local: {url: "http://127.0.0.1:8002/v1", model: base}
features:
  copy: {route: prompt, template: copy@production, upstream: local}
  notes: {route: prompt, template: release-notes, upstream: local}
  triage: {route: finetune, adapter: triage-lora@production, upstream: local}
  tagging: {route: finetune, adapter: tagger-lora, upstream: local}
"""


def adapter_directory(path: Path) -> Path:
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": 4}))
    return path


async def publish_adapter(env: dict[str, str], name: str, adapter_dir: Path) -> None:
    client = redis_from_url(env["TRIVIUM_REDIS__URL"], RedisSettings())
    try:
        settings = RegistrySettings(key_prefix=env["TRIVIUM_REGISTRY__KEY_PREFIX"])
        adapters = Registry(client, ADAPTER_KIND, settings, cache=False)
        metadata = {"base_model": "tiny", "weights_sha256": "0" * 64, "rank": 4}
        published = await adapters.publish(name, str(adapter_dir), metadata)
        await adapters.promote(name, "production", published.artifact.version)
    finally:
        await client.aclose()


def test_check_registry_finds_missing_templates_and_adapters(
    http: httpx.Client, gateway: ServiceProcess, tmp_path: Path
) -> None:
    publish_template(http, "copy", "Write copy for {{ product }}", ["product"], ADMIN)
    adapter = adapter_directory(tmp_path / "triage-lora")
    asyncio.run(publish_adapter(gateway.env, "triage-lora", adapter))
    policy = tmp_path / "policy.yaml"
    policy.write_text(REFERENCES)
    assert cli_check(gateway, str(policy))[0] == 0  # offline: the names are fine

    code, [checked] = cli_check(gateway, "--registry", str(policy))
    assert code == 1
    assert checked["valid"] is False
    assert checked["errors"] == [
        {"path": "features.notes.template", "message": "no template named 'release-notes'"},
        {"path": "features.tagging.adapter", "message": "no adapter named 'tagger-lora'"},
    ]
    text = run_trivium(gateway.env, "policy", "check", "--registry", str(policy))
    assert "  error  features.notes.template: no template named 'release-notes'" in text.stdout
