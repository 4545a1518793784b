"""One request's trip down its feature's road, with fallback along the feature's chain.

resolve (feature, variant, deadline) -> [cache] -> per road: resolve template and adapter ->
[retrieve -> re-rank] -> render -> generate -> verify -> account. A road that fails (upstream
error, open circuit, retriever down) hands the request to the next road in `fallback`, while
time is left; shadows run afterwards on a copy, off the response path.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from trivium.common.errors import TriviumError
from trivium.gateway.clients.retriever import RetrievalError, RetrieverClient, SearchHit
from trivium.gateway.clients.upstream import (
    ChatUsage,
    StreamDelta,
    StreamEnd,
    UpstreamClient,
    UpstreamError,
    UpstreamPool,
)
from trivium.gateway.invoke.accounting import Accountant, span_lineage, status_of
from trivium.gateway.invoke.cache import ResponseCache, cache_key
from trivium.gateway.invoke.cost import answer_cost
from trivium.gateway.invoke.errors import UnknownFeatureError, failure_error, failure_reason
from trivium.gateway.invoke.groundedness import SCORERS, TokenOverlap
from trivium.gateway.invoke.inputs import (
    PASSAGES,
    check_request,
    context_message,
    passage_variables,
    retrieval_query,
    template_variables,
    upstream_messages,
)
from trivium.gateway.invoke.schemas import (
    Citation,
    FallbackInfo,
    InvokeRequest,
    InvokeResponse,
    Lineage,
    Timings,
    Usage,
    Verdict,
)
from trivium.gateway.invoke.shadow import ShadowRunner, shadow_arms
from trivium.gateway.policy import LoadedPolicy, assign_variant, assignment_key
from trivium.gateway.policy.model import Arm, Feature, Road
from trivium.gateway.telemetry.metrics import KpiRecorder, RequestStatus
from trivium.gateway.telemetry.stats import StatsRecorder
from trivium.gateway.telemetry.tracing import (
    INVALID_SPAN,
    Span,
    SpanKind,
    genai_attributes,
    span,
    start_span,
    use_span,
)
from trivium.registry import ArtifactVersion, Registry, TemplateRenderer
from trivium.registry.errors import RegistryUnavailableError

__all__ = ("Call", "Invoker", "Plan", "StreamEvent")

log = logging.getLogger(__name__)

RETRIEVING: frozenset[Road] = frozenset({"rag", "rag+prompt", "finetune+rag"})
ADAPTED: frozenset[Road] = frozenset({"finetune", "finetune+rag"})


class FeatureMisconfiguredError(TriviumError):
    status_code = 500
    code = "feature_misconfigured"
    title = "Feature misconfigured"


@dataclass(slots=True)
class Call:
    """One request as resolved when it arrived: the policy it keeps, its arm, its deadline."""

    request_id: str
    feature_name: str
    feature: Feature
    loaded: LoadedPolicy
    arm: Arm
    request: InvokeRequest
    deadline: float
    started: float = field(default_factory=time.perf_counter)

    @property
    def variant(self) -> str:
        return self.arm.variant or ""


@dataclass(slots=True)
class Plan:
    """One road, ready to generate."""

    arm: Arm
    upstream: UpstreamClient
    body: dict[str, Any]
    template: ArtifactVersion | None
    adapter: str | None
    hits: list[SearchHit]
    index_version: str | None
    timings: Timings


StreamEvent = str | InvokeResponse
"""A text delta, then one final summary."""


class Invoker:
    def __init__(
        self,
        *,
        templates: Registry,
        adapters: Registry,
        renderer: TemplateRenderer,
        upstreams: UpstreamPool,
        retriever: RetrieverClient,
        cache: ResponseCache | None,
        cache_prefix: str,
        default_cache_ttl_s: int,
        kpis: KpiRecorder,
        stats: StatsRecorder,
        shadows: ShadowRunner | None,
    ) -> None:
        self.templates = templates
        self.adapters = adapters
        self.renderer = renderer
        self.upstreams = upstreams
        self.retriever = retriever
        self.cache = cache
        self.cache_prefix = cache_prefix
        self.default_cache_ttl_s = default_cache_ttl_s
        self.kpis = kpis
        self.stats = stats
        self.shadows = shadows
        self.accountant = Accountant(kpis, stats)
        self.scorer = SCORERS[TokenOverlap.name]

    # -- resolving ---------------------------------------------------------------------

    def resolve(
        self, feature_name: str, request: InvokeRequest, loaded: LoadedPolicy, request_id: str
    ) -> Call:
        feature = loaded.policy.features.get(feature_name)
        if feature is None:
            known = ", ".join(sorted(loaded.policy.features)) or "none"
            raise UnknownFeatureError(
                f"no feature {feature_name!r} in the routing policy (features: {known})",
                field="feature",
            )
        check_request(request, feature.limits.max_input_chars)
        variant = assign_variant(
            feature_name, feature.variants, assignment_key(request.user, request.session)
        )
        return Call(
            request_id=request_id or uuid.uuid4().hex,
            feature_name=feature_name,
            feature=feature,
            loaded=loaded,
            arm=feature.arm(feature_name, variant),
            request=request,
            deadline=time.monotonic() + feature.limits.timeout_s,
        )

    def _roads(self, call: Call) -> list[Arm]:
        arms = [call.arm]
        for entry in call.feature.fallback:
            arm = call.feature.fallback_arm(call.feature_name, entry, call.arm)
            if arm not in arms:
                arms.append(arm)
        return arms

    async def _template(self, ref: str) -> ArtifactVersion:
        try:
            template = await self.templates.resolve(ref)
        except RegistryUnavailableError:
            raise
        except TriviumError as exc:
            raise FeatureMisconfiguredError(
                f"the policy's template {ref} cannot be resolved: {exc.message}", field="template"
            ) from exc
        label = ref.partition("@")[2]
        if label and not label.isdigit():
            self.kpis.template_version(template.name, label, template.version)
        return template

    async def _adapter(self, ref: str) -> str:
        """`name@label` to the exact `name@version` the upstream will serve."""
        try:
            return (await self.adapters.resolve(ref)).ref
        except RegistryUnavailableError:
            return ref  # the upstream resolves the label itself; lineage keeps the label
        except TriviumError as exc:
            raise FeatureMisconfiguredError(
                f"the policy's adapter {ref} cannot be resolved: {exc.message}", field="adapter"
            ) from exc

    # -- one road ----------------------------------------------------------------------

    async def _prepare(self, call: Call, arm: Arm) -> Plan:
        timings = Timings()
        template = await self._template(arm.template) if arm.template is not None else None
        adapter = await self._adapter(arm.adapter) if arm.route in ADAPTED and arm.adapter else None
        upstream = self.upstreams.get(arm.upstream)
        hits: list[SearchHit] = []
        index_version = None
        if arm.route in RETRIEVING and arm.retrieval is not None:
            began = time.perf_counter()
            with span("retrieve", attributes={"trivium.collection": arm.retrieval.collection}) as s:
                found = await self.retriever.search(
                    arm.retrieval, retrieval_query(call.request), deadline=call.deadline
                )
                if s.is_recording():
                    s.set_attribute("trivium.hits", len(found.hits))
                    if found.index_version:
                        s.set_attribute("trivium.retriever_index", found.index_version)
            hits = _cut(found.hits, arm.retrieval.max_passage_chars)
            index_version = found.index_version
            timings.rerank = found.timings_ms.get("rerank", 0.0)
            timings.retrieve = (time.perf_counter() - began) * 1000 - timings.rerank
        began = time.perf_counter()
        prompt = None
        context = context_message(hits) if hits else None
        if template is not None:
            with span("render", template=template.ref):
                declared = template.metadata.get("variables", [])
                variables = template_variables(call.request, declared)
                if PASSAGES in declared:
                    variables[PASSAGES] = passage_variables(hits)
                    context = None
                prompt = self.renderer.render(template, variables)
        messages = upstream_messages(call.request, prompt, context)
        timings.render = (time.perf_counter() - began) * 1000
        limit = call.feature.limits.max_tokens
        body: dict[str, Any] = {
            "model": adapter or upstream.upstream.model,
            "messages": messages,
            "max_tokens": min(call.request.max_tokens or limit, limit),
        }
        temperature = call.request.temperature
        if temperature is None:
            temperature = call.feature.temperature
        if temperature is not None:
            body["temperature"] = temperature
        return Plan(arm, upstream, body, template, adapter, hits, index_version, timings)

    def _finish(
        self,
        call: Call,
        plan: Plan,
        text: str,
        usage: Usage,
        finish_reason: str | None,
        fallback: FallbackInfo | None,
    ) -> InvokeResponse:
        timings = plan.timings
        groundedness: float | None = None
        verdict: Verdict | None = None
        retrieval = plan.arm.retrieval
        if plan.arm.route in RETRIEVING and retrieval is not None:
            began = time.perf_counter()
            groundedness = self.scorer.score(text, [hit.text for hit in plan.hits])
            verdict = "passed"
            floor = retrieval.min_groundedness
            if floor is not None and (groundedness is None or groundedness < floor):
                verdict = "flagged" if retrieval.on_fail == "flag" else "withheld"
            timings.verify = (time.perf_counter() - began) * 1000
        upstream = plan.upstream.upstream
        return InvokeResponse(
            id=call.request_id,
            feature=call.feature_name,
            route=plan.arm.route,
            variant=plan.arm.variant,
            template=plan.template.ref if plan.template is not None else None,
            adapter=plan.adapter,
            output=None if verdict == "withheld" else text,
            citations=[
                Citation(
                    index=i,
                    doc_id=hit.doc_id,
                    chunk_id=hit.chunk_id,
                    source=hit.source,
                    offsets=(hit.start, hit.end),
                    score=hit.score,
                    title=hit.title,
                )
                for i, hit in enumerate(plan.hits, start=1)
            ],
            usage=usage,
            cost_usd=answer_cost(upstream.price, usage.prompt_tokens, usage.completion_tokens),
            timings_ms=timings,
            lineage=Lineage(
                policy_hash=call.loaded.hash,
                policy_version=call.loaded.policy.version,
                template=plan.template.ref if plan.template is not None else None,
                adapter=plan.adapter,
                retriever_index=plan.index_version,
                upstream=plan.arm.upstream,
            ),
            fallback=fallback,
            groundedness=groundedness,
            verdict=verdict,
            needs_review=verdict == "flagged",
            finish_reason=finish_reason,
        )

    def _fell_back(
        self,
        call: Call,
        arms: list[Arm],
        index: int,
        exc: UpstreamError | RetrievalError | FeatureMisconfiguredError,
    ) -> FallbackInfo:
        """Hand over to the next road, or raise the failure when none is left or time is up.

        A dangling template or adapter reference (e.g. a policy shipped before its adapter
        was promoted) fails its road like an upstream would: logged, counted, fallen back."""
        if index + 1 >= len(arms) or time.monotonic() >= call.deadline:
            if isinstance(exc, FeatureMisconfiguredError):
                raise exc
            raise failure_error(call.feature_name, exc) from exc
        reason = (
            "misconfigured" if isinstance(exc, FeatureMisconfiguredError) else failure_reason(exc)
        )
        road, next_road = arms[index].route, arms[index + 1].route
        self.kpis.fallback(call.feature_name, road, next_road, reason)
        log.warning(
            "falling back",
            extra={
                "feature": call.feature_name,
                "from": road,
                "to": next_road,
                "reason": reason,
                "error": str(exc),
            },
        )
        return FallbackInfo(from_route=road, reason=reason)

    # -- the whole request ---------------------------------------------------------------

    async def invoke(self, call: Call) -> InvokeResponse:
        with span(
            f"invoke {call.feature_name}",
            kind=SpanKind.SERVER,
            policy_hash=call.loaded.hash,
            attributes={"trivium.feature": call.feature_name, "trivium.variant": call.variant},
        ) as root:
            response = await self._invoke(call)
            if root.is_recording():
                root.set_attributes(span_lineage(response))
            return response

    async def _invoke(self, call: Call) -> InvokeResponse:
        status: RequestStatus = "error"
        response: InvokeResponse | None = None
        try:
            key = await self._cache_key(call)
            response = await self._cache_get(call, key)
            if response is None:
                response = await self._generate(call)
                await self._cache_put(call, key, response)
                self._start_shadows(call, response)
            status = "withheld" if response.verdict == "withheld" else "ok"
            return response
        except TriviumError as exc:
            status = status_of(exc)
            raise
        finally:
            self._account(call, response, status)

    async def _generate(self, call: Call) -> InvokeResponse:
        arms = self._roads(call)
        fallback: FallbackInfo | None = None
        for index, arm in enumerate(arms):
            try:
                plan = await self._prepare(call, arm)
                began = time.perf_counter()
                model = plan.body["model"]
                with span(f"chat {model}", kind=SpanKind.CLIENT, adapter=plan.adapter) as s:
                    result = await plan.upstream.chat(
                        plan.body, deadline=call.deadline, request_id=call.request_id
                    )
                    if s.is_recording():
                        s.set_attributes(
                            _chat_attributes(plan, result.usage, result.model, result.finish_reason)
                        )
                plan.timings.generate = (time.perf_counter() - began) * 1000
            except (UpstreamError, RetrievalError, FeatureMisconfiguredError) as exc:
                fallback = self._fell_back(call, arms, index, exc)
                continue
            usage = Usage(
                result.usage.prompt_tokens,
                result.usage.completion_tokens,
                result.usage.prompt_tokens + result.usage.completion_tokens,
            )
            return self._finish(call, plan, result.text, usage, result.finish_reason, fallback)
        raise AssertionError("unreachable: the last road raises")  # pragma: no cover

    async def stream(self, call: Call) -> AsyncIterator[StreamEvent]:
        """Deltas as they come, then the summary. Fallback only before the first delta; a
        feature that may withhold its answer is verified before anything is sent."""
        status: RequestStatus = "error"
        response: InvokeResponse | None = None
        root = start_span(
            f"invoke {call.feature_name}",
            kind=SpanKind.SERVER,
            policy_hash=call.loaded.hash,
            attributes={"trivium.feature": call.feature_name, "trivium.variant": call.variant},
        )
        try:
            key = await self._cache_key(call)
            response = await self._cache_get(call, key)
            if response is None:
                async for event in self._stream_roads(call, root):
                    if isinstance(event, InvokeResponse):
                        response = event
                    else:
                        yield event
                assert response is not None
                await self._cache_put(call, key, response)
                self._start_shadows(call, response)
            elif response.output:
                yield response.output
            status = "withheld" if response.verdict == "withheld" else "ok"
            yield response
        except TriviumError as exc:
            status = status_of(exc)
            raise
        finally:
            self._account(call, response, status)
            if root.is_recording() and response is not None:
                root.set_attributes(span_lineage(response))
            root.end()

    async def _stream_roads(self, call: Call, root: Span) -> AsyncIterator[StreamEvent]:
        arms = self._roads(call)
        fallback: FallbackInfo | None = None
        for index, arm in enumerate(arms):
            sent = False
            generate: Span = INVALID_SPAN
            try:
                with use_span(root):  # no yield inside: the context is detached where attached
                    plan = await self._prepare(call, arm)
                hold = plan.arm.retrieval is not None and plan.arm.retrieval.on_fail == "withhold"
                began = time.perf_counter()
                parts: list[str] = []
                end: StreamEnd | None = None
                model = plan.body["model"]
                generate = start_span(
                    f"chat {model}", kind=SpanKind.CLIENT, parent=root, adapter=plan.adapter
                )
                upstream = plan.upstream.stream(
                    plan.body, deadline=call.deadline, request_id=call.request_id
                )
                async with contextlib.aclosing(upstream) as chunks:
                    async for chunk in chunks:
                        if isinstance(chunk, StreamDelta):
                            parts.append(chunk.text)
                            if not hold:
                                sent = True
                                yield chunk.text
                        else:
                            end = chunk
                plan.timings.generate = (time.perf_counter() - began) * 1000
                if generate.is_recording() and end is not None:
                    generate.set_attributes(
                        _chat_attributes(plan, end.usage, end.model, end.finish_reason)
                    )
            except (UpstreamError, RetrievalError, FeatureMisconfiguredError) as exc:
                generate.record_exception(exc)
                if sent and isinstance(exc, UpstreamError):  # the caller has part of it
                    raise failure_error(call.feature_name, exc) from exc
                fallback = self._fell_back(call, arms, index, exc)
                continue
            finally:
                generate.end()
            text = "".join(parts)
            prompt_tokens = end.usage.prompt_tokens if end and end.usage else 0
            completion_tokens = end.usage.completion_tokens if end and end.usage else 0
            usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
            response = self._finish(
                call, plan, text, usage, end.finish_reason if end else None, fallback
            )
            if hold and response.output:
                yield response.output
            yield response
            return

    def _start_shadows(self, call: Call, primary: InvokeResponse) -> None:
        if self.shadows is None or not call.feature.shadow:
            return
        for name, arm in shadow_arms(call.feature_name, call.feature, call.arm):
            copy = Call(
                request_id=call.request_id,
                feature_name=call.feature_name,
                feature=call.feature,
                loaded=call.loaded,
                arm=arm,
                request=call.request,
                deadline=time.monotonic() + call.feature.limits.timeout_s,
            )
            self.shadows.submit(
                call.request_id,
                call.feature_name,
                name,
                functools.partial(self._generate, copy),
                primary,
            )

    # -- cache -----------------------------------------------------------------------------

    async def _cache_key(self, call: Call) -> str | None:
        if self.cache is None or call.feature.cache is None:
            return None
        arm = call.arm
        template = (await self._template(arm.template)).ref if arm.template else "-"
        adapter = await self._adapter(arm.adapter) if arm.adapter else "-"
        request = call.request
        parts = (call.feature_name, call.variant or "-", arm.route, template, adapter)
        body = (call.loaded.hash, request.input, request.messages, request.max_tokens)
        return cache_key(self.cache_prefix, parts, (body, request.temperature))

    async def _cache_get(self, call: Call, key: str | None) -> InvokeResponse | None:
        if key is None or self.cache is None:
            return None
        return await self.cache.lookup(call.feature_name, key, call.request_id, call.started)

    async def _cache_put(self, call: Call, key: str | None, response: InvokeResponse) -> None:
        if key is not None and self.cache is not None and call.feature.cache is not None:
            ttl = call.feature.cache.ttl_s or self.default_cache_ttl_s
            await self.cache.store(call.feature_name, key, response, ttl)

    def _account(self, call: Call, response: InvokeResponse | None, status: RequestStatus) -> None:
        self.accountant.record(
            feature=call.feature_name,
            route=call.arm.route,
            variant=call.variant,
            status=status,
            seconds=time.perf_counter() - call.started,
            policy_hash=call.loaded.hash,
            response=response,
        )


def _cut(hits: list[SearchHit], max_chars: int | None) -> list[SearchHit]:
    """Passages as the prompt gets them; a cut one's citation covers what was given."""
    if max_chars is None:
        return hits
    return [
        msgspec.structs.replace(hit, text=hit.text[:max_chars], end=hit.start + max_chars)
        if len(hit.text) > max_chars
        else hit
        for hit in hits
    ]


def _chat_attributes(
    plan: Plan, usage: ChatUsage | None, model: str, finish_reason: str | None
) -> dict[str, Any]:
    """The GenAI semantic-convention attributes of one upstream chat call."""
    return genai_attributes(
        "chat",
        plan.arm.upstream,
        plan.body["model"],
        plan.body["max_tokens"],
        usage.prompt_tokens if usage else None,
        usage.completion_tokens if usage else None,
        model,
        finish_reason,
    )
