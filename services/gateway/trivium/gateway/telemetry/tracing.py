"""OpenTelemetry spans for the request path, with GenAI semantic-convention attributes.

Tracing is off unless an OTLP/HTTP endpoint is configured (`gateway.tracing.otlp_endpoint`
or `OTEL_EXPORTER_OTLP_ENDPOINT`); then `configure_tracing` installs an SDK provider that
samples `sample_ratio` of root traces (children follow their parent) and exports in
batches off the request path. While it is off, `span()` does no tracing work at all.

GenAI attributes follow the current conventions (semconv 1.37+): the provider is
`gen_ai.provider.name`, which replaced the deprecated `gen_ai.system`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from trivium.common.logs import REQUEST_ID
from trivium.gateway.config import TracingSection

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = (
    "INVALID_SPAN",
    "TRACER_NAME",
    "Span",
    "SpanKind",
    "build_tracer_provider",
    "configure_tracing",
    "genai_attributes",
    "span",
    "start_span",
    "tracing_enabled",
    "use_span",
)

TRACER_NAME = "trivium.gateway"
_ENDPOINT_ENV_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_tracer: Tracer | None = None
"""Set by `configure_tracing` when spans are exported; None: tracing is off."""


def tracing_enabled() -> bool:
    return _tracer is not None


def build_tracer_provider(section: TracingSection) -> TracerProvider | None:
    """An SDK `TracerProvider` exporting over OTLP/HTTP, or None when no endpoint is set."""
    explicit = section.otlp_endpoint
    if explicit is None and not any(os.environ.get(name) for name in _ENDPOINT_ENV_VARS):
        return None
    # Imported here: the SDK and exporter are only loaded when tracing is on.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: section.service_name}),
        sampler=ParentBased(TraceIdRatioBased(section.sample_ratio)),
    )
    # Without an explicit endpoint the exporter reads the OTEL_* variables itself (and
    # appends /v1/traces to the generic one).
    exporter = OTLPSpanExporter(endpoint=explicit) if explicit else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(section: TracingSection) -> Callable[[], None]:
    """Install the global provider when an endpoint is configured; returns the shutdown."""
    global _tracer
    provider = build_tracer_provider(section)
    if provider is None:
        return lambda: None
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer(TRACER_NAME)

    def shutdown() -> None:
        global _tracer
        _tracer = None
        provider.shutdown()  # flushes what the batch processor still holds

    return shutdown


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    request_id: str | None = None,
    policy_hash: str | None = None,
    template: str | None = None,
    adapter: str | None = None,
    retriever_index: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """A span around one stage, a child of the current one.

    Carries `trivium.request_id` (default: the request id of the current request) and the
    lineage attributes that are given. `tracer` overrides the configured one (tests). While
    tracing is off this yields the invalid, non-recording span; callers that build costly
    attributes afterwards check `span.is_recording()` first.
    """
    tracer = tracer or _tracer
    if tracer is None:
        yield INVALID_SPAN
        return
    attrs = _attributes(request_id, policy_hash, template, adapter, retriever_index, attributes)
    with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as current:
        yield current


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Span | None = None,
    policy_hash: str | None = None,
    adapter: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Span:
    """A span that is not made current, for work that spans an async generator's yields
    (a context attached before a yield may be detached in another); the caller ends it.
    Its parent is `parent` when given, else the current span."""
    if _tracer is None:
        return INVALID_SPAN
    attrs = _attributes(None, policy_hash, None, adapter, None, attributes)
    context = trace.set_span_in_context(parent) if parent is not None else None
    return _tracer.start_span(name, context=context, kind=kind, attributes=attrs)


def _attributes(
    request_id: str | None,
    policy_hash: str | None,
    template: str | None,
    adapter: str | None,
    retriever_index: str | None,
    extra: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    request_id = request_id or REQUEST_ID.get()
    if request_id is not None:
        attrs["trivium.request_id"] = request_id
    if policy_hash is not None:
        attrs["trivium.policy_hash"] = policy_hash
    if template is not None:
        attrs["trivium.template"] = template
    if adapter is not None:
        attrs["trivium.adapter"] = adapter
    if retriever_index is not None:
        attrs["trivium.retriever_index"] = retriever_index
    if extra:
        attrs.update(extra)
    return attrs


def genai_attributes(
    operation: str,
    system: str,
    request_model: str,
    max_tokens: int | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    response_model: str | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """GenAI attributes of one model call; `system` is written as `gen_ai.provider.name`.

    Per the conventions, the call's span is named f"{operation} {request_model}" (e.g.
    "chat triage-lora") and has kind CLIENT.
    """
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": system,
        "gen_ai.request.model": request_model,
    }
    if max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = max_tokens
    if input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = output_tokens
    if response_model is not None:
        attrs["gen_ai.response.model"] = response_model
    if finish_reason is not None:
        attrs["gen_ai.response.finish_reasons"] = [finish_reason]
    return attrs


@contextmanager
def use_span(current: Span) -> Iterator[None]:
    """Make `current` the parent of spans started inside (a no-op while tracing is off)."""
    if not current.is_recording():
        yield
        return
    with trace.use_span(current, end_on_exit=False):
        yield
