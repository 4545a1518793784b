"""The Helm chart (deploy/helm/trivium) without helm: schema, rendered manifests, settings.

No helm binary can be installed here, so the chart is written in a small subset of Helm's
templates and rendered by tests/support/helm_render.py, which raises on anything outside that
subset. deploy/helm/README.md lists what this does and does not validate.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.support.helm_manifests import (
    CHART_DIR,
    Manifests,
    chart_values,
    load_yaml_strict,
    merge_values,
    render,
)
from tests.support.helm_render import ChartFailError, TemplateError, render_chart
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
COMPONENTS = ("gateway", "retriever", "model")
SETTINGS: dict[str, type[TriviumSettings]] = {
    "gateway": GatewaySettings,
    "retriever": RetrieverSettings,
    "model": ModelSettings,
}


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text("utf-8"))
    return schema


def _schema_errors(values: dict[str, Any]) -> list[jsonschema.ValidationError]:
    return list(jsonschema.Draft7Validator(_schema()).iter_errors(values))


@pytest.fixture(scope="module", params=["default", "all-features"])
def variant(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Manifests]:
    values = chart_values() if request.param == "default" else chart_values(ALL_ON)
    return values, render(values)


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


# ---------------------------------------------------------------- values and the schema


def test_the_schema_is_valid_draft_07() -> None:
    jsonschema.Draft7Validator.check_schema(_schema())


@pytest.mark.parametrize("extra", [None, ALL_ON])
def test_values_files_validate_against_the_schema(extra: str | None) -> None:
    values = chart_values(extra) if extra else chart_values()
    assert [f"{list(e.absolute_path)}: {e.message}" for e in _schema_errors(values)] == []


BAD_VALUES = [
    pytest.param({"gateway": {"port": "8000"}}, ["gateway", "port"], "is not of type", id="type"),
    pytest.param({"gateway": {"prot": 8000}}, ["gateway"], "'prot' was unexpected", id="unknown"),
    pytest.param({"gatway": {}}, [], "'gatway' was unexpected", id="unknown-top-level"),
    pytest.param({"log": {"level": "TRACE"}}, ["log", "level"], "is not one of", id="enum"),
    pytest.param({"model": {"engine": "tgi"}}, ["model", "engine"], "is not one of", id="engine"),
    pytest.param(
        {"model": {"vllm": {"maxLoraRank": 24}}},
        ["model", "vllm", "maxLoraRank"],
        "is not one of",
        id="lora-rank-vllm-refuses",
    ),
    pytest.param(
        {"model": {"vllm": {"gpuMemoryUtilization": 1.5}}},
        ["model", "vllm", "gpuMemoryUtilization"],
        "greater than the maximum",
        id="range",
    ),
    pytest.param(
        {"gateway": {"adminTokens": [{"actor": "alice", "secretName": "admin"}]}},
        ["gateway", "adminTokens", 0],
        "'secretKey' is a required property",
        id="required",
    ),
    pytest.param(
        {"gateway": {"adminTokens": [{"actor": "Alice", "secretName": "a", "secretKey": "k"}]}},
        ["gateway", "adminTokens", 0, "actor"],
        "does not match",
        id="actor-case",
    ),
    pytest.param(
        {"redis": {"auth": {"password": "hunter2"}}},
        ["redis", "auth"],
        "should not be valid",
        id="literal-redis-password",
    ),
    pytest.param(
        {"redis": {"externalUrl": "redis://:hunter2@redis:6379/0"}},
        ["redis", "externalUrl"],
        "does not match",
        id="password-in-url",
    ),
    pytest.param(
        {"qdrant": {"apiKey": "sk-literal"}},
        ["qdrant", "apiKey"],
        "is not valid under any of the given schemas",
        id="literal-qdrant-key",
    ),
    pytest.param({"redis": {"enabled": False}}, ["redis"], "", id="no-redis-at-all"),
    pytest.param(
        {"gateway": {"config": {"port": 9000}}},
        ["gateway", "config"],
        "should not be valid",
        id="config-overrides-chart-key",
    ),
    pytest.param(
        {"podSecurityContext": {"runAsNonRoot": False}},
        ["podSecurityContext", "runAsNonRoot"],
        "True was expected",
        id="root",
    ),
]


@pytest.mark.parametrize(("override", "path", "message"), BAD_VALUES)
def test_the_schema_rejects_bad_values_naming_the_path(
    override: dict[str, Any], path: list[str | int], message: str
) -> None:
    errors = _schema_errors(chart_values(override))
    found = [e for e in errors if list(e.absolute_path) == path and message in e.message]
    assert found, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


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
    values = chart_values({"model": {"engine": "transformers", "gpu": {"enabled": False}}})
    assert _schema_errors(values) == []
    pod = render(values).get("Deployment", "trivium-model")["spec"]["template"]["spec"]
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
    def checksum(values: dict[str, Any]) -> str:
        deployment = render(values).get("Deployment", "trivium-gateway")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    base = chart_values()
    policy = base["gateway"]["policy"]["content"].replace("max_tokens: 8", "max_tokens: 9")
    assert checksum(base) == checksum(
        merge_values(base, {"gateway": {"policy": {"content": policy}}})
    )
    assert checksum(base) != checksum(
        merge_values(base, {"gateway": {"config": {"max_in_flight": 9}}})
    )


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


# ---------------------------------------------------------------- the renderer itself


def test_gateway_auth_takes_its_secrets_from_an_existing_secret() -> None:
    container = _container(render(chart_values()).get("Deployment", "trivium-gateway"))
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["TRIVIUM_GATEWAY__AUTH__PEPPER"] == {
        "name": "trivium-gateway-auth",
        "key": "pepper",
    }
    assert refs["TRIVIUM_GATEWAY__ADMIN_TOKENS__admin"] == {
        "name": "trivium-gateway-auth",
        "key": "admin-token",
    }
    with pytest.raises(ChartFailError, match=r"gateway\.auth\.existingSecret"):
        render(chart_values({"gateway": {"auth": {"existingSecret": ""}}}))
    opened = render(chart_values({"gateway": {"auth": {"mode": "open"}}}))
    names = {e["name"] for e in _container(opened.get("Deployment", "trivium-gateway"))["env"]}
    assert "TRIVIUM_GATEWAY__AUTH__PEPPER" not in names


def test_a_chart_without_any_redis_refuses_to_render() -> None:
    values = chart_values({"redis": {"enabled": False}})  # the schema also refuses it
    with pytest.raises(ChartFailError, match="redis"):
        render(values)


def test_a_release_named_after_a_dependency_follows_its_naming_rule() -> None:
    manifests = render(chart_values(), release="redis-prod")
    url = _env(_container(manifests.get("Deployment", "redis-prod-trivium-gateway")))
    assert "@redis-prod-master:6379" in url["TRIVIUM_REDIS__URL"]["value"]


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ('{{ template "x" . }}', "outside the supported subset"),
        ('{{ lower "A" }}', "outside the supported subset"),
        ("{{ .Values.missing.deeper }}", "nil pointer"),
        ("{{ .Values.missing }}", "printing nil"),
        ("{{ if .Values.x }}no end", "has no end"),
        ("{{ eq .Values.n 1 }}", "eq/ne on numbers"),
        ('{{ printf "%d" .Values.n }}', "only %s and %v"),
        ("{{ .Values.map }}", "use toYaml"),
    ],
)
def test_the_renderer_refuses_what_it_does_not_evaluate(
    tmp_path: Path, template: str, error: str
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("name: t\nversion: 0.1.0\n", encoding="utf-8")
    (tmp_path / "templates" / "t.yaml").write_text(template, encoding="utf-8")
    with pytest.raises(TemplateError, match=re.escape(error)):
        render_chart(tmp_path, {"n": 1, "map": {"a": 1}, "x": True})


def test_numbers_print_as_helm_prints_float64(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("name: t\nversion: 0.1.0\n", encoding="utf-8")
    (tmp_path / "templates" / "t.yaml").write_text(
        "a: {{ .Values.a }}\nb: {{ .Values.b }}\nc: {{ .Values.c }}\n"
        "d: {{- toYaml .Values.d | nindent 2 }}\n",
        encoding="utf-8",
    )
    rendered = render_chart(tmp_path, {"a": 8000, "b": 1048576, "c": 0.9, "d": {"n": 1048576}})
    assert rendered.manifests["templates/t.yaml"] == (
        "a: 8000\nb: 1.048576e+06\nc: 0.9\nd:\n  n: 1048576\n"
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
