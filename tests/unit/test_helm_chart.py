"""The Helm chart (deploy/helm/trivium), linted, schema-checked and rendered by Helm itself.

helm-python-sdk binds Helm v4's own Go engine (no helm binary): `lint`, `render` (what
`helm template` does) and the values.schema.json validation Helm runs on install. Every
rendered document is then checked against the Kubernetes 1.30 schemas and against the services'
own settings code. deploy/helm/README.md lists what this does and does not validate.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.support.helm_manifests import (
    CHART_DIR,
    Manifests,
    chart,
    chart_values,
    load_yaml_strict,
    render,
)
from trivium.common.http.exposure import require_admin_credential
from trivium.common.settings import TriviumSettings
from trivium.gateway.config import GatewaySettings
from trivium.gateway.policy import parse_policy
from trivium.model.config import ModelSettings
from trivium.model.vllm.command import build_vllm_command
from trivium.retriever.config import RetrieverSettings

K8S_VERSION = "1.30"
CRDS = {"ServiceMonitor", "PrometheusRule"}
ALL_ON = "ci/all-features-values.yaml"
# The dependency charts cannot be fetched here: they are disabled and reached by external URL.
EXTERNAL_DEPS: dict[str, Any] = {
    "redis": {"enabled": False, "externalUrl": "redis://redis.data.svc:6379/0"},
    "qdrant": {"enabled": False, "externalUrl": "http://qdrant.data.svc:6333"},
}
VARIANTS: dict[str, dict[str, Any] | str | None] = {
    "default": None,
    "external-deps": EXTERNAL_DEPS,
    "all-features": ALL_ON,
}
COMPONENTS = ("gateway", "retriever", "model")
SETTINGS: dict[str, type[TriviumSettings]] = {
    "gateway": GatewaySettings,
    "retriever": RetrieverSettings,
    "model": ModelSettings,
}


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text("utf-8"))
    return schema


def _helm_schema_error(override: dict[str, Any]) -> str:
    """Helm's own validation of values.yaml + override against values.schema.json."""
    try:
        chart().validate_schema(override)
    except helm.HelmValuesError as error:
        return str(error)
    return ""


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Manifests]:
    override = VARIANTS[request.param]
    return chart_values(override), render(override)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = container.get("env") or []
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {entry["name"]: entry for entry in entries}


def _config_file(manifests: Manifests, component: str) -> str:
    data: str = manifests.get("ConfigMap", f"trivium-{component}-config")["data"]["trivium.yaml"]
    return data


# ---------------------------------------------------------------- helm lint, values and the schema


@pytest.mark.parametrize("override", [None, ALL_ON], ids=["default", "all-features"])
def test_helm_lint_finds_nothing_but_the_unfetched_dependencies(override: str | None) -> None:
    values = chart_values(override)
    report = helm.lint(CHART_DIR, values, namespace="llm", kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert [m["error"] for m in problems] == [
        "chart directory is missing these dependencies: qdrant,redis"
    ], report
    assert report["total_charts_linted"] == 1


def test_helm_lint_reports_a_template_error(tmp_path: Path) -> None:
    """The linter is live: a broken copy of the chart is reported as an error."""
    broken = tmp_path / "trivium"
    chart().save_dir(tmp_path)
    services = broken / "templates" / "services.yaml"
    services.write_text(services.read_text("utf-8") + "\n{{ .Values.nope.deeper }}\n", "utf-8")
    report = helm.lint(broken, None)
    errors = [m for m in report["messages"] if m["severity"] == 3]
    assert errors, report
    assert "nil pointer" in errors[0]["error"]


def test_the_schema_is_valid_draft_07() -> None:
    jsonschema.Draft7Validator.check_schema(_schema())


@pytest.mark.parametrize("override", list(VARIANTS.values()), ids=list(VARIANTS))
def test_values_files_validate_against_the_schema(override: dict[str, Any] | str | None) -> None:
    values = chart_values(override)
    assert _helm_schema_error(values) == ""


BAD_VALUES = [
    pytest.param(
        {"gateway": {"port": "8000"}}, "/gateway/port", "got string, want integer", id="type"
    ),
    pytest.param({"gateway": {"prot": 8000}}, "/gateway", "'prot' not allowed", id="unknown"),
    pytest.param({"gatway": {}}, "", "'gatway' not allowed", id="unknown-top-level"),
    pytest.param({"log": {"level": "TRACE"}}, "/log/level", "value must be one of", id="enum"),
    pytest.param(
        {"model": {"engine": "tgi"}}, "/model/engine", "value must be one of", id="engine"
    ),
    pytest.param(
        {"model": {"vllm": {"maxLoraRank": 24}}},
        "/model/vllm/maxLoraRank",
        "value must be one of 1, 8, 16",
        id="lora-rank-vllm-refuses",
    ),
    pytest.param(
        {"model": {"vllm": {"gpuMemoryUtilization": 1.5}}},
        "/model/vllm/gpuMemoryUtilization",
        "maximum: got 1.5, want 1",
        id="range",
    ),
    pytest.param(
        {"gateway": {"adminTokens": [{"actor": "alice", "secretName": "admin"}]}},
        "/gateway/adminTokens/0",
        "missing property 'secretKey'",
        id="required",
    ),
    pytest.param(
        {"gateway": {"adminTokens": [{"actor": "Alice", "secretName": "a", "secretKey": "k"}]}},
        "/gateway/adminTokens/0/actor",
        "does not match pattern",
        id="actor-case",
    ),
    pytest.param(
        {"redis": {"auth": {"password": "hunter2"}}},
        "/redis/auth",
        "'not' failed",
        id="literal-redis-password",
    ),
    pytest.param(
        {"redis": {"externalUrl": "redis://:hunter2@redis:6379/0"}},
        "/redis/externalUrl",
        "does not match pattern",
        id="password-in-url",
    ),
    pytest.param(
        {"qdrant": {"apiKey": "sk-literal"}},
        "/qdrant/apiKey",
        "'oneOf' failed",
        id="literal-qdrant-key",
    ),
    pytest.param({"redis": {"enabled": False}}, "/redis", "'anyOf' failed", id="no-redis-at-all"),
    pytest.param(
        {"gateway": {"config": {"port": 9000}}},
        "/gateway/config",
        "'not' failed",
        id="config-overrides-chart-key",
    ),
    pytest.param(
        {"podSecurityContext": {"runAsNonRoot": False}},
        "/podSecurityContext/runAsNonRoot",
        "value must be true",
        id="root",
    ),
    pytest.param(
        {"gateway": {"image": {"registry": "x"}}},
        "/gateway/image",
        "'registry' not allowed",
        id="image",
    ),
    pytest.param(
        {"tests": {"invoke": {"keySecret": {"name": "Bad_Name"}}}},
        "/tests/invoke/keySecret/name",
        "does not match pattern",
        id="test-key-secret",
    ),
]


@pytest.mark.parametrize(("override", "path", "message"), BAD_VALUES)
def test_helm_rejects_bad_values_naming_the_path(
    override: dict[str, Any], path: str, message: str
) -> None:
    error = _helm_schema_error(override)
    assert re.search(rf"at '{re.escape(path)}': [^\n]*{re.escape(message)}", error), error
    with pytest.raises(helm.HelmValuesError, match=re.escape(f"at '{path}'")):
        render(override)  # an install runs the same validation before rendering


# ---------------------------------------------------------------- every rendered document


def test_every_document_is_a_valid_kubernetes_object(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    _values, manifests = variant
    names: set[tuple[str, str]] = set()
    for doc in manifests:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        name = doc["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
        assert len(name) <= 63
        assert (doc["kind"], name) not in names, f"{doc['kind']}/{name} rendered twice"
        names.add((doc["kind"], name))
        if doc["kind"] not in CRDS:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_expected_objects_are_rendered(variant: tuple[dict[str, Any], Manifests]) -> None:
    values, manifests = variant
    for component in COMPONENTS:
        manifests.get("Deployment", f"trivium-{component}")
        manifests.get("Service", f"trivium-{component}")
        manifests.get("ConfigMap", f"trivium-{component}-config")
        manifests.get("PodDisruptionBudget", f"trivium-{component}")
        hpa = values[component]["autoscaling"]["enabled"]
        assert len(manifests.of_kind("HorizontalPodAutoscaler")) == (
            sum(values[c]["autoscaling"]["enabled"] for c in COMPONENTS)
        )
        deployment = manifests.get("Deployment", f"trivium-{component}")
        assert ("replicas" in deployment["spec"]) is not hpa, "HPA and replicas fight"
    manifests.get("ConfigMap", "trivium-gateway-policy")
    manifests.get("ServiceAccount", "trivium")
    assert manifests.notes.strip().startswith("Trivium")


def test_no_secret_is_rendered_and_every_secret_is_a_reference(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    _values, manifests = variant
    assert manifests.of_kind("Secret") == []
    sensitive = re.compile(r"TOKEN|KEY|PASSWORD|SECRET", re.IGNORECASE)
    for deployment in manifests.of_kind("Deployment"):
        for name, entry in _env(_container(deployment)).items():
            if sensitive.search(name):
                assert "value" not in entry, f"{name} is a literal"
                assert entry["valueFrom"]["secretKeyRef"]["name"]
    for config_map in manifests.of_kind("ConfigMap"):
        text = json.dumps(config_map["data"])
        assert "admin_tokens" not in text
        assert "api_key:" not in text
        assert "password" not in text


def test_services_select_their_deployments_pods_on_the_named_port(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    _values, manifests = variant
    for component in COMPONENTS:
        service = manifests.get("Service", f"trivium-{component}")
        pod = manifests.get("Deployment", f"trivium-{component}")["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert [p["name"] for p in _container({"spec": {"template": pod}})["ports"]] == ["http"]


# ---------------------------------------------------------------- pods


def test_probes_hit_healthz_and_readyz_on_the_container_port(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    _values, manifests = variant
    for component in COMPONENTS:
        container = _container(manifests.get("Deployment", f"trivium-{component}"))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        settings_port = load_yaml_strict(_config_file(manifests, component))[component]["port"]
        expected = {"livenessProbe": "/healthz", "startupProbe": "/healthz"}
        expected["readinessProbe"] = "/readyz"
        for probe, path in expected.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path
            assert ports[get["port"]] == settings_port, f"{component} {probe} misses the port"


def test_termination_grace_outlasts_prestop_plus_graceful_shutdown(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    values, manifests = variant
    for component in COMPONENTS:
        deployment = manifests.get("Deployment", f"trivium-{component}")
        pre_stop = _container(deployment)["lifecycle"]["preStop"]
        sleep = (
            pre_stop["sleep"]["seconds"]
            if "sleep" in pre_stop
            else int(pre_stop["exec"]["command"][-1])
        )
        assert sleep == values["lifecycle"]["preStopSleepSeconds"] > 0
        drain = load_yaml_strict(_config_file(manifests, component))[component][
            "graceful_shutdown_s"
        ]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > sleep + drain, f"{component}: {grace} <= {sleep} + {drain}"


def test_pods_run_as_non_root_on_a_read_only_root_with_writable_data(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    values, manifests = variant
    for component in COMPONENTS:
        pod = manifests.get("Deployment", f"trivium-{component}")["spec"]["template"]["spec"]
        container = _container({"spec": {"template": {"spec": pod}}})
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        data_dir = load_yaml_strict(_config_file(manifests, component))["data_dir"]
        for writable in (data_dir, "/tmp"):
            assert not mounts[writable].get("readOnly"), writable
            volume = volumes[mounts[writable]["name"]]
            assert "emptyDir" in volume or "persistentVolumeClaim" in volume
        claim = values[component]["persistence"]["existingClaim"]
        if claim:
            data_volume = volumes[mounts[data_dir]["name"]]
            assert data_volume["persistentVolumeClaim"]["claimName"] == claim


def test_the_gateway_mounts_the_policy_configmap_as_a_directory(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    _values, manifests = variant
    deployment = manifests.get("Deployment", "trivium-gateway")
    container = _container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    policy_file = Path(_env(container)["TRIVIUM_GATEWAY__POLICY_FILE"]["value"])
    [mount] = [
        m
        for m in container["volumeMounts"]
        if volumes[m["name"]].get("configMap", {}).get("name") == "trivium-gateway-policy"
    ]
    assert "subPath" not in mount, "a subPath mount never sees the kubelet's update"
    assert policy_file.parent == Path(mount["mountPath"])
    config_map = manifests.get("ConfigMap", "trivium-gateway-policy")
    assert policy_file.name in config_map["data"]
    assert "items" not in volumes[mount["name"]]["configMap"]


def test_the_policy_configmap_parses_with_the_gateways_loader(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    _values, manifests = variant
    data = manifests.get("ConfigMap", "trivium-gateway-policy")["data"]
    policy = parse_policy(data["policy.yaml"], "configmap")
    assert policy.features
    local = policy.upstreams["local-model"]
    service = manifests.get("Service", "trivium-model")
    assert (
        local.url
        == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/v1"
    )
    env = _env(_container(manifests.get("Deployment", "trivium-gateway")))
    for upstream in policy.upstreams.values():
        if upstream.api_key_env:
            assert "secretKeyRef" in env[upstream.api_key_env]["valueFrom"]


def test_the_model_service_runs_vllm_on_a_gpu_pool(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    values, manifests = variant
    gpu = values["model"]["gpu"]
    pod = manifests.get("Deployment", "trivium-model")["spec"]["template"]["spec"]
    container = _container({"spec": {"template": {"spec": pod}}})
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == str(gpu["count"])
    assert gpu["nodeSelector"].items() <= pod["nodeSelector"].items()
    assert all(t in pod["tolerations"] for t in gpu["tolerations"])
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    shm = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert volumes[shm[0]["name"]]["emptyDir"]["medium"] == "Memory"
    section = load_yaml_strict(_config_file(manifests, "model"))["model"]
    assert section["engine"] == "vllm"
    settings = ModelSettings.model_validate({"model": section})
    command = build_vllm_command(settings.model.vllm, settings.model.served_model_name)
    assert "--enable-lora" in command
    assert command[command.index("--max-loras") + 1] == str(values["model"]["vllm"]["maxLoras"])
    assert command[command.index("--max-lora-rank") + 1] == str(
        values["model"]["vllm"]["maxLoraRank"]
    )
    startup = container["startupProbe"]
    budget = startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
    assert budget > settings.model.vllm.startup_timeout_s, "the probe kills vLLM mid-load"


def test_the_cpu_engine_needs_no_gpu() -> None:
    override = {"model": {"engine": "transformers", "gpu": {"enabled": False}}}
    assert _helm_schema_error(override) == ""
    deployment = render(override).get("Deployment", "trivium-model")
    assert _container(deployment)["image"].split(":")[0].endswith("-model"), "the CPU image"
    pod = deployment["spec"]["template"]["spec"]
    assert pod == render(override).get("Deployment", "trivium-model")["spec"]["template"]["spec"]
    container = _container({"spec": {"template": {"spec": pod}}})
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod


# ---------------------------------------------------------------- settings the services read


def _container_environment(container: dict[str, Any], config_path: Path) -> dict[str, str]:
    """The env a container sees: secrets as placeholders, `$(VAR)` expanded as kubelet does."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = f"secret-{ref['name']}-{ref['key']}"
        else:
            env[entry["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], entry["value"]
            )
    assert env.pop("TRIVIUM_CONFIG") == "/etc/trivium/config/trivium.yaml"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/etc/trivium/config" in mounts
    env["TRIVIUM_CONFIG"] = str(config_path)
    return env


@pytest.mark.parametrize("component", COMPONENTS)
def test_rendered_settings_load_with_the_services_own_settings(
    variant: tuple[dict[str, Any], Manifests],
    component: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values, manifests = variant
    config_path = tmp_path / "trivium.yaml"
    config_path.write_text(_config_file(manifests, component), encoding="utf-8")
    container = _container(manifests.get("Deployment", f"trivium-{component}"))
    for name in [n for n in os.environ if n.startswith("TRIVIUM_")]:
        monkeypatch.delenv(name)
    for name, value in _container_environment(container, config_path).items():
        monkeypatch.setenv(name, value)
    settings: Any = SETTINGS[component](config_file=config_path)
    section = getattr(settings, component)
    assert section.host == "0.0.0.0"
    assert section.port == container["ports"][0]["containerPort"]
    assert settings.redis.url, "pods must not fall back to a per-pod embedded Redis"
    if values["redis"]["enabled"]:
        assert settings.redis.url.startswith("redis://:secret-trivium-redis-redis-password@")
        assert "trivium-redis-master:6379" in settings.redis.url
    elif values["redis"]["externalUrl"]:
        assert settings.redis.url == values["redis"]["externalUrl"]
    actors = [t["actor"] for t in values[component]["adminTokens"]]
    auth = values["gateway"]["auth"]
    if component == "gateway":
        assert section.auth.mode == auth["mode"] == "keys"
        assert section.auth.pepper is not None, "auth on needs the pepper from the Secret"
        actors.append(auth["bootstrapActor"])
    elif not actors:  # no tokens of its own: the gateway's bootstrap credential guards writes
        actors.append(auth["bootstrapActor"])
    assert sorted(section.admin_tokens) == sorted(actors)
    if component != "gateway":  # bound to 0.0.0.0: the service's exposure rule must pass
        require_admin_credential(component, section.host, section.admin_tokens, section.insecure)
    if component == "gateway":
        assert str(section.policy_file).startswith("/etc/trivium/policy/")
        assert section.retriever.url == "http://trivium-retriever:8200"
    if component == "retriever":
        assert section.store.backend == "qdrant"
        assert section.store.url == (
            values["qdrant"]["externalUrl"] or "http://trivium-qdrant:6333"
        )
        if values["qdrant"]["apiKeySecret"]["name"]:
            assert section.store.api_key is not None


def test_a_settings_change_rolls_the_pods_and_a_policy_change_does_not() -> None:
    def checksum(override: dict[str, Any]) -> str:
        deployment = render(override).get("Deployment", "trivium-gateway")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    policy = chart_values()["gateway"]["policy"]["content"].replace(
        "max_tokens: 8", "max_tokens: 9"
    )
    assert checksum({}) == checksum({"gateway": {"policy": {"content": policy}}})
    assert checksum({}) != checksum({"gateway": {"config": {"max_in_flight": 9}}})


# ---------------------------------------------------------------- monitoring objects


def test_service_monitors_scrape_metrics_on_each_service(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    values, manifests = variant
    monitors = manifests.of_kind("ServiceMonitor")
    assert len(monitors) == sum(values[c]["serviceMonitor"]["enabled"] for c in COMPONENTS)
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        service = manifests.get("Service", monitor["metadata"]["name"])
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["port"] == service["spec"]["ports"][0]["name"]
        assert endpoint["path"] == "/metrics"


def test_the_dashboard_configmap_is_labelled_for_the_grafana_sidecar(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    values, manifests = variant
    [config_map] = [
        d for d in manifests.of_kind("ConfigMap") if "dashboard" in d["metadata"]["name"]
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    if values["grafanaDashboard"]["namespace"]:
        assert config_map["metadata"]["namespace"] == values["grafanaDashboard"]["namespace"]
    text = config_map["data"]["trivium-overview.json"]
    source = (CHART_DIR / "dashboards" / "trivium-overview.json").read_text("utf-8")
    assert text.strip() == source.strip(), "the dashboard JSON must arrive verbatim"
    assert json.loads(text)["title"]


def test_the_prometheus_rule_carries_the_alert_file() -> None:
    manifests = render(chart_values(ALL_ON))
    [rule] = manifests.of_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((CHART_DIR / "rules" / "trivium-alerts.yaml").read_text("utf-8"))
    assert rule["spec"] == source
    assert isinstance(rule["spec"]["groups"], list)
    for group in rule["spec"]["groups"]:
        assert group["name"]
        assert isinstance(group["rules"], list)
        for item in group["rules"]:
            assert item["expr"]
            assert ("alert" in item) != ("record" in item)


# ---------------------------------------------------------------- failures at render time


def test_gateway_auth_takes_its_secrets_from_an_existing_secret() -> None:
    container = _container(render().get("Deployment", "trivium-gateway"))
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["TRIVIUM_GATEWAY__AUTH__PEPPER"] == {
        "name": "trivium-gateway-auth",
        "key": "pepper",
    }
    assert refs["TRIVIUM_GATEWAY__ADMIN_TOKENS__admin"] == {
        "name": "trivium-gateway-auth",
        "key": "admin-token",
    }
    with pytest.raises(helm.HelmRenderError, match=r"gateway\.auth\.existingSecret"):
        render({"gateway": {"auth": {"existingSecret": ""}}})
    opened = render({"gateway": {"auth": {"mode": "open"}}})
    names = {e["name"] for e in _container(opened.get("Deployment", "trivium-gateway"))["env"]}
    assert "TRIVIUM_GATEWAY__AUTH__PEPPER" not in names
    [invoke] = [h for h in opened.hooks if h["metadata"]["name"] == "trivium-test-invoke"]
    assert "TRIVIUM_KEY" not in _env(invoke["spec"]["containers"][0]), "open: no key sent"


# ---------------------------------------------------------------- the dependency charts' names


def _dependency_fullname(release: str, chart_name: str, chart_values: dict[str, Any]) -> str:
    """The full name the dependency charts give their objects, per their documented rule:
    bitnami/common `common.names.fullname` (templates/_names.tpl) and qdrant-helm
    `qdrant.fullname` (charts/qdrant/templates/_helpers.tpl), which is the same: the
    fullnameOverride, else the release name when it contains the chart name (or nameOverride),
    else `<release>-<name>`; truncated to 63 characters, then a trailing '-' dropped."""
    if chart_values.get("fullnameOverride"):
        return str(chart_values["fullnameOverride"])[:63].removesuffix("-")
    name = chart_values.get("nameOverride") or chart_name
    full = release if name in release else f"{release}-{name}"
    return full[:63].removesuffix("-")


DEPENDENCY_NAMING = [
    pytest.param("trivium", {}, id="plain"),
    pytest.param("redis-prod", {}, id="release-contains-redis"),
    pytest.param("search-qdrant", {}, id="release-contains-qdrant"),
    pytest.param("a" * 50 + "-xy", {}, id="long-release-truncated"),
    pytest.param("a" * 52 + "b", {}, id="truncated-at-63"),
    pytest.param(
        "trivium",
        {"redis": {"fullnameOverride": "cache"}, "qdrant": {"nameOverride": "vectors"}},
        id="subchart-overrides",
    ),
]


@pytest.mark.parametrize(("release", "override"), DEPENDENCY_NAMING)
def test_names_of_the_dependency_objects_follow_their_charts_rules(
    release: str, override: dict[str, Any]
) -> None:
    """bitnami/redis creates Service `<fullname>-master` (port 6379) and, unless
    auth.existingSecret, Secret `<fullname>` with key `redis-password`; the qdrant chart creates
    Service `<fullname>` with port 6333. Every reference the chart renders must name those."""
    values = chart_values(override)
    manifests = render(override, release=release)
    redis = _dependency_fullname(release, "redis", values["redis"])
    qdrant = _dependency_fullname(release, "qdrant", values["qdrant"])
    for deployment in manifests.of_kind("Deployment"):
        env = _env(_container(deployment))
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": redis,
            "key": "redis-password",
        }
        assert env["TRIVIUM_REDIS__URL"]["value"] == (
            f"redis://:$(REDIS_PASSWORD)@{redis}-master:6379/0"
        )
    [config] = [
        c
        for c in manifests.of_kind("ConfigMap")
        if c["metadata"]["labels"]["app.kubernetes.io/component"] == "retriever"
    ]
    settings = load_yaml_strict(config["data"]["trivium.yaml"])
    assert settings["retriever"]["store"]["url"] == f"http://{qdrant}:6333"


def test_an_existing_redis_secret_is_referenced_instead_of_the_generated_one() -> None:
    override = {
        "redis": {"auth": {"existingSecret": "redis-auth", "existingSecretPasswordKey": "pw"}}
    }
    env = _env(_container(render(override).get("Deployment", "trivium-gateway")))
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "pw"}


# ---------------------------------------------------------------- `helm test` hooks


def _hook(manifests: Manifests, name: str) -> dict[str, Any]:
    [hook] = [h for h in manifests.hooks if h["metadata"]["name"] == name]
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    return hook


def test_the_test_hooks_are_valid_pods_that_target_the_services(
    variant: tuple[dict[str, Any], Manifests],
) -> None:
    values, manifests = variant
    assert len(manifests.hooks) == 2
    for hook in manifests.hooks:
        kubernetes_validate.validate(hook, K8S_VERSION, strict=True)
        assert hook["spec"]["restartPolicy"] == "Never"
        container = hook["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert (
            container["image"]
            == _container(manifests.get("Deployment", "trivium-gateway"))["image"]
        ), "the gateway image has the Python the hook scripts need"
    readyz = _env(_hook(manifests, "trivium-test-readyz")["spec"]["containers"][0])
    expected = [
        f"http://{s['metadata']['name']}:{s['spec']['ports'][0]['port']}/readyz"
        for s in manifests.of_kind("Service")
        if s["metadata"]["name"].startswith("trivium-")
    ]
    assert sorted(readyz["TRIVIUM_TEST_URLS"]["value"].split()) == sorted(expected)
    assert len(expected) == len(COMPONENTS)
    invoke = _env(_hook(manifests, "trivium-test-invoke")["spec"]["containers"][0])
    feature = values["tests"]["invoke"]["feature"]
    assert invoke["TRIVIUM_TEST_URL"]["value"] == (
        f"http://trivium-gateway:8000/v1/features/{feature}/invoke"
    )
    assert json.loads(invoke["TRIVIUM_TEST_BODY"]["value"]) == {
        "input": values["tests"]["invoke"]["input"]
    }
    policy = manifests.get("ConfigMap", "trivium-gateway-policy")["data"]["policy.yaml"]
    assert feature in parse_policy(policy, "configmap").features, "the hook invokes a real feature"
    secret = values["tests"]["invoke"]["keySecret"]
    assert invoke["TRIVIUM_KEY"]["valueFrom"]["secretKeyRef"] == secret


def test_no_test_hooks_when_disabled_and_a_key_secret_is_required() -> None:
    assert render({"tests": {"enabled": False}}).hooks == []
    with pytest.raises(helm.HelmRenderError, match=r"tests\.invoke\.keySecret\.name"):
        render({"tests": {"invoke": {"keySecret": {"name": ""}}}})


class _Recorder(BaseHTTPRequestHandler):
    """Answers the hook scripts: /readyz per path, invoke by the bearer it gets."""

    seen: list[tuple[str, str, str]] = []

    def do_GET(self) -> None:
        status, body = (200, "ready") if self.path.startswith("/ok") else (200, "degraded")
        if self.path.startswith("/down"):
            status, body = 503, "unavailable"
        self._reply(status, {"status": body})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        self.seen.append((self.path, self.headers.get("authorization", ""), body))
        ok = self.headers.get("authorization") == "Bearer good"
        self._reply(200 if ok else 401, {"output": "billing"} if ok else {"title": "no key"})

    def _reply(self, status: int, payload: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture(scope="module")
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run_hook(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    container = _hook(render(), name)["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["python", "-c"]
    return subprocess.run(
        [sys.executable, "-c", command[2]],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_readyz_hook_script_passes_only_when_every_service_is_ready(recorder: str) -> None:
    ok = _run_hook("trivium-test-readyz", {"TRIVIUM_TEST_URLS": f"{recorder}/ok {recorder}/ok2"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for failing in ("/degraded", "/down"):
        urls = f"{recorder}/ok {recorder}{failing}"
        run = _run_hook("trivium-test-readyz", {"TRIVIUM_TEST_URLS": urls})
        assert run.returncode == 1, run.stdout
        assert f"FAIL {recorder}{failing}" in run.stdout
    closed = _run_hook("trivium-test-readyz", {"TRIVIUM_TEST_URLS": "http://127.0.0.1:9/readyz"})
    assert closed.returncode == 1


def test_the_invoke_hook_script_sends_the_key_and_the_body(recorder: str) -> None:
    _Recorder.seen.clear()
    env = {
        "TRIVIUM_TEST_URL": f"{recorder}/v1/features/ticket-triage/invoke",
        "TRIVIUM_TEST_BODY": '{"input": {"ticket": "x"}}',
    }
    good = _run_hook("trivium-test-invoke", {**env, "TRIVIUM_KEY": "good"})
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("200 ")
    bad = _run_hook("trivium-test-invoke", {**env, "TRIVIUM_KEY": "bad"})
    assert bad.returncode == 1
    assert _Recorder.seen[0] == (
        "/v1/features/ticket-triage/invoke",
        "Bearer good",
        '{"input": {"ticket": "x"}}',
    )


@pytest.mark.parametrize(
    ("in_chart", "source"),
    [
        ("dashboards/trivium-overview.json", "deploy/grafana/trivium-overview.json"),
        ("rules/trivium-alerts.yaml", "deploy/prometheus/trivium-alerts.yaml"),
    ],
)
def test_the_chart_carries_the_tested_dashboard_and_rules(in_chart: str, source: str) -> None:
    """Helm reads files inside the chart only, so the chart keeps copies of what
    tests/e2e/test_observability.py proves against a real Prometheus; they must not drift."""
    root = Path(__file__).parents[2]
    copy = (root / "deploy/helm/trivium" / in_chart).read_bytes()
    assert copy == (root / source).read_bytes(), f"copy {source} to deploy/helm/trivium/{in_chart}"
