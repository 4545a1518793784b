"""Spans per stage with GenAI attributes: structure in memory, and a real OTLP/HTTP export."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, SpanKind, Tracer

from tests.support.otlp_receiver import Received, otlp_receiver
from trivium.common.logs import REQUEST_ID
from trivium.gateway.config import TracingSection
from trivium.gateway.telemetry import tracing
from trivium.gateway.telemetry.tracing import (
    build_tracer_provider,
    configure_tracing,
    genai_attributes,
    span,
)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer(tracing.TRACER_NAME)
    provider.shutdown()


def test_stage_spans_nest_and_carry_lineage_and_genai(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    token = REQUEST_ID.set("req-123")
    try:
        with span("gateway.request", tracer=tracer, policy_hash="abc123", template="kb@production"):
            with span("retrieve", tracer=tracer, retriever_index="support-kb"):
                pass
            with span(
                "chat triage-lora", tracer=tracer, kind=SpanKind.CLIENT, adapter="triage-lora@3"
            ) as generate:
                assert generate.is_recording()
                generate.set_attributes(
                    genai_attributes(
                        "chat",
                        "openai",
                        "triage-lora",
                        max_tokens=64,
                        input_tokens=120,
                        output_tokens=17,
                        response_model="triage-lora",
                        finish_reason="stop",
                    )
                )
    finally:
        REQUEST_ID.reset(token)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"gateway.request", "retrieve", "chat triage-lora"}
    root, retrieve, generate_span = (
        spans["gateway.request"],
        spans["retrieve"],
        spans["chat triage-lora"],
    )
    assert root.parent is None
    assert root.context is not None
    for child in (retrieve, generate_span):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context is not None
        assert child.context.trace_id == root.context.trace_id

    assert dict(root.attributes or {}) == {
        "trivium.request_id": "req-123",
        "trivium.policy_hash": "abc123",
        "trivium.template": "kb@production",
    }
    assert (retrieve.attributes or {})["trivium.retriever_index"] == "support-kb"
    assert (retrieve.attributes or {})["trivium.request_id"] == "req-123"
    assert generate_span.kind is SpanKind.CLIENT
    attrs = dict(generate_span.attributes or {})
    assert attrs["trivium.adapter"] == "triage-lora@3"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "triage-lora"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 17
    assert attrs["gen_ai.response.model"] == "triage-lora"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)


def test_an_exception_marks_the_span_failed(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), span("verify", tracer=tracer):
        raise RuntimeError("boom")
    (failed,) = exporter.get_finished_spans()
    assert not failed.status.is_ok
    assert failed.events[0].name == "exception"


def test_genai_attributes_leave_out_what_is_unknown() -> None:
    assert genai_attributes("chat", "openai", "base") == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "base",
    }


def test_without_an_endpoint_tracing_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    shutdown = configure_tracing(TracingSection())
    try:
        assert not tracing.tracing_enabled()
        with span("render", template="kb@production") as current:
            assert current is INVALID_SPAN
            assert not current.is_recording()
    finally:
        shutdown()


@pytest.fixture(name="otlp_receiver")
def _otlp_receiver() -> Iterator[tuple[str, Received]]:
    with otlp_receiver() as receiver:
        yield receiver


def test_spans_reach_an_otlp_http_receiver(
    otlp_receiver: tuple[str, Received],
) -> None:
    base_url, received = otlp_receiver
    section = TracingSection(otlp_endpoint=f"{base_url}/v1/traces", service_name="gw-test")
    provider = build_tracer_provider(section)
    assert provider is not None
    tracer = provider.get_tracer(tracing.TRACER_NAME)
    with (
        span("gateway.request", tracer=tracer, request_id="req-9"),
        span("chat base", tracer=tracer, kind=SpanKind.CLIENT) as generate,
    ):
        generate.set_attributes(genai_attributes("chat", "openai", "base", output_tokens=5))
    provider.shutdown()  # flushes the batch processor

    assert received, "nothing was exported"
    path, content_type, body = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "gw-test"
    exported = {s.name: s for scope in resource_spans.scope_spans for s in scope.spans}
    assert set(exported) == {"gateway.request", "chat base"}
    attrs = {a.key: a.value for a in exported["chat base"].attributes}
    assert attrs["gen_ai.request.model"].string_value == "base"
    assert attrs["gen_ai.usage.output_tokens"].int_value == 5
    root_attrs = {a.key: a.value for a in exported["gateway.request"].attributes}
    assert root_attrs["trivium.request_id"].string_value == "req-9"
    assert exported["chat base"].parent_span_id == exported["gateway.request"].span_id


def test_sample_ratio_zero_records_nothing(
    otlp_receiver: tuple[str, Received],
) -> None:
    base_url, received = otlp_receiver
    section = TracingSection(otlp_endpoint=f"{base_url}/v1/traces", sample_ratio=0.0)
    provider = build_tracer_provider(section)
    assert provider is not None
    with span("gateway.request", tracer=provider.get_tracer(tracing.TRACER_NAME)) as current:
        assert not current.is_recording()
    provider.shutdown()
    assert received == []


def test_the_standard_env_var_turns_export_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    provider = build_tracer_provider(TracingSection())
    assert provider is not None
    provider.shutdown()
