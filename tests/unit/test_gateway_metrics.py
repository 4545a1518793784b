"""The gateway's KPI series: names, labels, pre-bound children, template version info."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from tests.support.prometheus import sample_value
from trivium.gateway.telemetry.metrics import GROUNDEDNESS_BUCKETS, KpiMetrics, KpiRecorder


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def kpi(registry: CollectorRegistry) -> KpiRecorder:
    return KpiRecorder(KpiMetrics(registry))


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_every_kpi_lands_in_its_series(kpi: KpiRecorder, registry: CollectorRegistry) -> None:
    kpi.request("support-kb", "rag", None, "ok", 0.2)
    kpi.request("support-kb", "rag", None, "ok", 0.3)
    kpi.request("support-kb", "rag", "b", "error", 7.0)
    kpi.stage("support-kb", "retrieve", 0.004)
    kpi.tokens("support-kb", "rag", prompt=120, completion=30)
    kpi.cost("support-kb", "rag", None, 0.0015)
    kpi.fallback("support-kb", "finetune", "rag", "timeout")
    kpi.cache("support-kb", "hit")
    kpi.groundedness("support-kb", 0.85)
    kpi.verdict("support-kb", "flagged")
    kpi.shadow("support-kb", "b", "ok")
    kpi.in_flight_inc()
    kpi.in_flight_inc()
    kpi.in_flight_dec()
    kpi.overload_rejected()
    text = scrape(registry)

    feature = {"feature": "support-kb"}
    production = {**feature, "traffic": "production"}
    rag = {**feature, "route": "rag", "traffic": "production"}
    assert sample_value(text, "trivium_requests_total", **rag, variant="", status="ok") == 2
    assert sample_value(text, "trivium_requests_total", **rag, variant="b", status="error") == 1
    assert sample_value(text, "trivium_request_duration_seconds_count", **rag, variant="") == 2
    assert (
        sample_value(text, "trivium_request_duration_seconds_bucket", **rag, variant="b", le="5.0")
        == 0
    )
    assert (
        sample_value(text, "trivium_request_duration_seconds_bucket", **rag, variant="b", le="10.0")
        == 1
    )
    assert (
        sample_value(
            text,
            "trivium_stage_duration_seconds_bucket",
            **production,
            stage="retrieve",
            le="0.005",
        )
        == 1
    )
    assert sample_value(text, "trivium_tokens_total", **rag, kind="prompt") == 120
    assert sample_value(text, "trivium_tokens_total", **rag, kind="completion") == 30
    assert sample_value(text, "trivium_cost_usd_total", **rag, variant="") == pytest.approx(0.0015)
    assert (
        sample_value(
            text,
            "trivium_fallbacks_total",
            **production,
            to="rag",
            reason="timeout",
            **{"from": "finetune"},
        )
        == 1
    )
    assert sample_value(text, "trivium_cache_requests_total", **feature, result="hit") == 1
    assert sample_value(text, "trivium_groundedness_bucket", **production, le="0.9") == 1
    assert sample_value(text, "trivium_groundedness_bucket", **production, le="0.8") == 0
    assert sample_value(text, "trivium_verdicts_total", **production, verdict="flagged") == 1
    assert (
        sample_value(text, "trivium_shadow_requests_total", **feature, variant="b", status="ok")
        == 1
    )
    assert sample_value(text, "trivium_in_flight_requests") == 1
    assert sample_value(text, "trivium_overload_rejections_total") == 1


def test_trial_traffic_is_labelled_apart(kpi: KpiRecorder, registry: CollectorRegistry) -> None:
    kpi.request("triage", "rag", None, "ok", 0.2)
    kpi.request("triage", "rag", None, "ok", 0.2, "trial")
    kpi.request("triage", "rag", None, "ok", 0.2, "trial")
    kpi.rejected("triage", "rag", None, "trial")
    kpi.tokens("triage", "rag", 10, 5, "trial")
    kpi.cost("triage", "rag", None, 0.5, "trial")
    kpi.fallback("triage", "rag", "prompt", "timeout", "trial")
    text = scrape(registry)
    rag = {"feature": "triage", "route": "rag", "variant": ""}
    trial = {**rag, "traffic": "trial"}
    assert (
        sample_value(text, "trivium_requests_total", **rag, status="ok", traffic="production") == 1
    )
    assert sample_value(text, "trivium_requests_total", **trial, status="ok") == 2
    assert sample_value(text, "trivium_requests_total", **trial, status="rejected") == 1
    assert sample_value(text, "trivium_request_duration_seconds_count", **trial) == 2
    assert sample_value(text, "trivium_cost_usd_total", **trial) == pytest.approx(0.5)
    assert (
        sample_value(
            text,
            "trivium_tokens_total",
            feature="triage",
            route="rag",
            kind="prompt",
            traffic="trial",
        )
        == 10
    )
    assert (
        sample_value(
            text,
            "trivium_fallbacks_total",
            feature="triage",
            to="prompt",
            reason="timeout",
            traffic="trial",
            **{"from": "rag"},
        )
        == 1
    )


def test_groundedness_buckets_step_by_a_tenth() -> None:
    assert GROUNDEDNESS_BUCKETS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def test_children_are_bound_once_per_label_set(
    kpi: KpiRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []
    original = MetricWrapperBase.labels

    def counting(self: MetricWrapperBase, *values: str) -> MetricWrapperBase:
        calls.append(values)
        return original(self, *values)

    monkeypatch.setattr(MetricWrapperBase, "labels", counting)
    for _ in range(100):
        kpi.request("support-kb", "rag", None, "ok", 0.01)
    kpi.request("support-kb", "rag", None, "error", 0.01)
    # one counter child per status, one histogram child: three labels() calls in all
    assert sorted(calls) == sorted(
        [
            ("support-kb", "rag", "", "ok", "production"),
            ("support-kb", "rag", "", "error", "production"),
            ("support-kb", "rag", "", "production"),
        ]
    )


def test_zero_tokens_and_cost_create_no_series(
    kpi: KpiRecorder, registry: CollectorRegistry
) -> None:
    kpi.tokens("triage", "finetune", prompt=0, completion=0)
    kpi.cost("triage", "finetune", None, 0.0)
    text = scrape(registry)
    assert "trivium_tokens_total{" not in text
    assert "trivium_cost_usd_total{" not in text


def test_template_version_info_moves_with_the_label(
    kpi: KpiRecorder, registry: CollectorRegistry
) -> None:
    kpi.template_version("kb-answer", "production", 3)
    kpi.template_version("kb-answer", "production", 3)
    kpi.template_version("kb-answer", "staging", 4)
    labels = {"template": "kb-answer", "label": "production"}
    text = scrape(registry)
    assert sample_value(text, "trivium_template_version_info", **labels, version="3") == 1

    kpi.template_version("kb-answer", "production", 4)
    text = scrape(registry)
    assert sample_value(text, "trivium_template_version_info", **labels, version="4") == 1
    assert 'label="production",template="kb-answer",version="3"' not in text
    assert (
        sample_value(
            text,
            "trivium_template_version_info",
            template="kb-answer",
            label="staging",
            version="4",
        )
        == 1
    )


def test_default_recorder_uses_the_exact_names() -> None:
    from prometheus_client import REGISTRY

    from trivium.gateway.telemetry import KPI

    KPI.request("names-check", "prompt", None, "ok", 0.01)
    assert (
        REGISTRY.get_sample_value(
            "trivium_requests_total",
            {
                "feature": "names-check",
                "route": "prompt",
                "variant": "",
                "status": "ok",
                "traffic": "production",
            },
        )
        == 1
    )
    names = {metric.name for metric in REGISTRY.collect()}
    expected = {
        "trivium_requests",
        "trivium_request_duration_seconds",
        "trivium_stage_duration_seconds",
        "trivium_tokens",
        "trivium_cost_usd",
        "trivium_fallbacks",
        "trivium_cache_requests",
        "trivium_groundedness",
        "trivium_verdicts",
        "trivium_shadow_requests",
        "trivium_in_flight_requests",
        "trivium_overload_rejections",
        "trivium_template_version_info",
    }
    assert expected <= names
