"""One request's trip down its feature's road, with fallback along the feature's chain.

`Invoker.run` is the one orchestration: admission -> [cache] -> per road (the arm, then each
fallback): prepare (references, retrieve, render) -> generate -> verify -> answer; then
cache store, shadows and accounting. It yields text deltas (when streaming) and then the
final answer; `invoke` drains it, `stream` hands it to the SSE writers. A road that fails
(upstream error, open circuit, retriever down, dangling reference) hands the request to the
next one while time is left and nothing was streamed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from trivium.common.errors import TriviumError
from trivium.gateway.callers import ANONYMOUS, Caller, Limiter
from trivium.gateway.clients.retriever import RetrievalError
from trivium.gateway.clients.upstream import ChatUsage, StreamDelta, StreamEnd, UpstreamError
from trivium.gateway.feedback.ids import new_answer_id
from trivium.gateway.invoke.accounting import Accountant, span_lineage, status_of
from trivium.gateway.invoke.admission import Admission
from trivium.gateway.invoke.answer import Generated, build_answer
from trivium.gateway.invoke.cache import ResponseCache, cache_key
from trivium.gateway.invoke.call import Call
from trivium.gateway.invoke.errors import UnknownFeatureError, failure_error, failure_reason
from trivium.gateway.invoke.extractive import extractive_answer
from trivium.gateway.invoke.groundedness import SCORERS, TokenOverlap
from trivium.gateway.invoke.inputs import check_request
from trivium.gateway.invoke.plan import FeatureMisconfiguredError, Plan, Planner
from trivium.gateway.invoke.schemas import FallbackInfo, InvokeRequest, InvokeResponse, Usage
from trivium.gateway.invoke.semantic_cache import SemanticCache, SemanticQuery, semantic_query
from trivium.gateway.invoke.shadow import ShadowRunner
from trivium.gateway.invoke.trial import trial_arm
from trivium.gateway.policy import LoadedPolicy, assign_variant, assignment_key
from trivium.gateway.policy.model import MODEL_FREE, Arm, Feature, Variant
from trivium.gateway.telemetry.metrics import RequestStatus, Traffic
from trivium.gateway.telemetry.tracing import (
    Span,
    SpanKind,
    genai_attributes,
    start_span,
    use_span,
)

if TYPE_CHECKING:  # the review queue imports the invoke schemas
    from trivium.gateway.reviews.queue import ReviewQueue

__all__ = ("Call", "FeatureMisconfiguredError", "Invoker", "StreamEvent")

log = logging.getLogger(__name__)

StreamEvent = str | InvokeResponse
"""A text delta, then one final answer."""
RoadFailure = UpstreamError | RetrievalError | FeatureMisconfiguredError


class Invoker:
    def __init__(
        self,
        *,
        planner: Planner,
        admission: Admission,
        accountant: Accountant,
        cache: ResponseCache | None,
        cache_prefix: str,
        default_cache_ttl_s: int,
        shadows: ShadowRunner | None,
        limiter: Limiter | None = None,
        variants: Callable[[str, Feature], Mapping[str, Variant]] | None = None,
        semantic: SemanticCache | None = None,
        reviews: ReviewQueue | None = None,
    ) -> None:
        self.planner = planner
        self.admission = admission
        self.accountant = accountant
        self.cache = cache
        self.cache_prefix = cache_prefix
        self.default_cache_ttl_s = default_cache_ttl_s
        self.shadows = shadows
        self.limiter = limiter
        self.variants = variants
        """The weights requests are assigned by (a rollout's effective ones); unset: the file's."""
        self.scorer = SCORERS[TokenOverlap.name]
        self.semantic = semantic
        """The semantic cache, for features whose policy opts in (`cache.semantic`)."""
        self.reviews = reviews
        """Flagged, withheld, held and sampled answers go to reviewers (production only)."""

    def resolve(
        self,
        feature_name: str,
        request: InvokeRequest,
        loaded: LoadedPolicy,
        request_id: str,
        caller: Caller = ANONYMOUS,
    ) -> Call:
        """The feature, checked input, sticky variant and deadline (raises 404/4xx)."""
        feature = loaded.policy.features.get(feature_name)
        if feature is None:
            known = ", ".join(sorted(loaded.policy.features)) or "none"
            raise UnknownFeatureError(
                f"no feature {feature_name!r} in the routing policy (features: {known})",
                field="feature",
            )
        try:
            if request.trial is not None:
                arm = trial_arm(feature_name, feature, request.trial.arm)
            else:
                variants = (
                    feature.variants
                    if self.variants is None
                    else self.variants(feature_name, feature)
                )
                variant = assign_variant(
                    feature_name, variants, assignment_key(request.user, request.session)
                )
                arm = feature.arm(feature_name, variant)
            check_request(request, feature.limits.max_input_chars)
        except TriviumError:
            traffic: Traffic = "production" if request.trial is None else "trial"
            self.accountant.kpis.rejected(feature_name, feature.route, None, traffic)
            raise
        return Call(
            request_id=request_id or uuid.uuid4().hex,
            feature_name=feature_name,
            feature=feature,
            loaded=loaded,
            arm=arm,
            request=request,
            deadline=time.monotonic() + feature.limits.timeout_s,
            caller=caller,
            answer_id=new_answer_id(time.time_ns() // 1_000_000),
        )

    async def invoke(self, call: Call) -> InvokeResponse:
        return await _last(self.run(call, streaming=False))

    def stream(self, call: Call) -> AsyncIterator[StreamEvent]:
        """Deltas as they come, then the answer. Fallback only before the first delta; a
        feature that may withhold its answer is verified before anything is sent."""
        return self.run(call, streaming=True)

    async def generate(self, call: Call) -> InvokeResponse:
        """The call's roads alone: no admission, cache, shadows or accounting (shadow runs)."""
        root = start_span(
            f"shadow {call.feature_name}", attributes={"trivium.variant": call.variant}
        )
        try:
            return await _last(self._roads(call, root, streaming=False))
        finally:
            root.end()

    async def run(self, call: Call, *, streaming: bool) -> AsyncIterator[StreamEvent]:
        with self.admission.admitted():
            status: RequestStatus = "error"
            response: InvokeResponse | None = None
            root = start_span(
                f"invoke {call.feature_name}",
                kind=SpanKind.SERVER,
                policy_hash=call.loaded.hash,
                attributes={"trivium.feature": call.feature_name, "trivium.variant": call.variant},
            )
            try:
                if self.limiter is not None:
                    call.grant = await self.limiter.admit(
                        call.caller, call.feature_name, call.feature.callers, call.max_tokens
                    )
                key = await self._cache_key(call)
                response, meaning = await self._cached(call, key)
                if response is None:
                    async for event in self._roads(call, root, streaming=streaming):
                        if isinstance(event, InvokeResponse):
                            response = event
                        else:
                            yield event
                    assert response is not None
                    await self._cache_put(call, key, response, meaning)
                    self._start_shadows(call, response)
                    response = await self._review(call, response)
                elif streaming and response.output:
                    yield response.output
                status = "withheld" if response.verdict in ("withheld", "held") else "ok"
                yield response
            except TriviumError as exc:
                status = status_of(exc)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                if response is None:
                    status = "cancelled"
                raise
            finally:
                if call.grant is not None and self.limiter is not None:
                    self._settle(call, response)
                self.accountant.record(call, response, status)
                if root.is_recording() and response is not None:
                    root.set_attributes(span_lineage(response))
                root.end()

    def _settle(self, call: Call, response: InvokeResponse | None) -> None:
        """The tokens actually used replace the reservation; a cached answer cost nothing."""
        assert call.grant is not None
        assert self.limiter is not None
        if response is None or response.cached:
            self.limiter.settle(call.grant, 0, 0.0)
        else:
            self.limiter.settle(call.grant, response.usage.total_tokens, response.cost_usd)

    # -- the roads -------------------------------------------------------------------------

    async def _roads(
        self, call: Call, root: Span, *, streaming: bool
    ) -> AsyncIterator[StreamEvent]:
        arms = (call.arm, *call.feature.fallback_arms(call.arm))
        fallback: FallbackInfo | None = None
        for index, arm in enumerate(arms):
            sent = False
            try:
                with use_span(root):  # no yield inside: the context is detached where attached
                    plan = await self.planner.prepare(call, arm)
                generated: Generated | None = None
                async for event in self._generate(call, plan, root, streaming=streaming):
                    if isinstance(event, Generated):
                        generated = event
                    else:
                        sent = True
                        yield event
                assert generated is not None
            except (UpstreamError, RetrievalError, FeatureMisconfiguredError) as exc:
                if sent and isinstance(exc, UpstreamError):  # the caller has part of it
                    raise failure_error(call.feature_name, exc) from exc
                fallback = self._fell_back(call, arms, index, exc)
                continue
            response = build_answer(call, plan, generated, fallback, self.scorer)
            call.hits, call.text = plan.hits, generated.text
            if streaming and plan.withholds and response.output:
                yield response.output
            yield response
            return

    async def _generate(
        self, call: Call, plan: Plan, root: Span, *, streaming: bool
    ) -> AsyncIterator[str | Generated]:
        """The upstream call: deltas (streaming, unless the road may withhold), then what was
        generated. The extractive road calls nothing: its passages are the answer."""
        hold = plan.withholds
        if plan.arm.route in MODEL_FREE:
            text = extractive_answer(plan.hits, call.feature.limits.max_tokens)
            if streaming and not hold:
                yield text
            yield Generated(text, _usage(None), "stop", plan.arm.route, 0.0)
            return
        model = plan.body["model"]
        chat = start_span(f"chat {model}", kind=SpanKind.CLIENT, parent=root, adapter=plan.adapter)
        began = time.perf_counter()
        try:
            if streaming:
                parts: list[str] = []
                end: StreamEnd | None = None
                upstream = plan.upstream.stream(
                    plan.body, deadline=call.deadline, request_id=call.request_id
                )
                async with contextlib.aclosing(upstream) as chunks:
                    async for chunk in chunks:
                        if isinstance(chunk, StreamDelta):
                            parts.append(chunk.text)
                            if not hold:
                                yield chunk.text
                        else:
                            end = chunk
                text = "".join(parts)
                usage = end.usage if end is not None else None
                finish_reason = end.finish_reason if end is not None else None
                served_by = end.model if end is not None else model
            else:
                result = await plan.upstream.chat(
                    plan.body, deadline=call.deadline, request_id=call.request_id
                )
                text, usage = result.text, result.usage
                finish_reason, served_by = result.finish_reason, result.model
            generate_ms = (time.perf_counter() - began) * 1000
            if chat.is_recording():
                chat.set_attributes(_chat_attributes(plan, usage, served_by, finish_reason))
        except UpstreamError as exc:
            chat.record_exception(exc)
            raise
        finally:
            call.waited_s += time.perf_counter() - began
            chat.end()
        yield Generated(text, _usage(usage), finish_reason, served_by, generate_ms)

    def _fell_back(
        self, call: Call, arms: tuple[Arm, ...], index: int, exc: RoadFailure
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
        self.accountant.kpis.fallback(call.feature_name, road, next_road, reason, call.traffic)
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

    def _start_shadows(self, call: Call, primary: InvokeResponse) -> None:
        if self.shadows is None or not call.feature.shadow or call.request.trial is not None:
            return
        for name, arm in call.feature.shadow_arms(call.arm):
            run = functools.partial(self.generate, call.copy_for(arm))
            self.shadows.submit(call.request_id, call.feature_name, name, run, primary)

    async def _review(self, call: Call, response: InvokeResponse) -> InvokeResponse:
        if self.reviews is None or call.request.trial is not None:
            return response
        return await self.reviews.consider(
            call.request,
            response,
            call.caller,
            call.request_id,
            call.hits,
            call.text,
            call.feature.review.sample_rate,
        )

    # -- cache -----------------------------------------------------------------------------

    async def _cache_key(self, call: Call) -> str | None:
        """None: no cache for this call (none configured, or trial traffic: a trial measures
        its arm's own answers, and its answers must not serve production)."""
        if self.cache is None or call.feature.cache is None or call.request.trial is not None:
            return None
        arm = call.arm
        planner = self.planner
        template = (await planner.template(call, arm.template)).ref if arm.template else "-"
        adapter = await planner.adapter(call, arm.adapter) if arm.adapter else "-"
        request = call.request
        parts = (call.feature_name, call.variant or "-", arm.route, template, adapter)
        body = (call.loaded.hash, request.input, request.messages, request.max_tokens)
        return cache_key(self.cache_prefix, parts, (body, request.temperature))

    async def _cached(
        self, call: Call, key: str | None
    ) -> tuple[InvokeResponse | None, SemanticQuery | None]:
        """The exact cache's answer, else the semantic cache's; and the semantic query to
        store the answer under (None when the semantic cache is off for this call)."""
        response = await self._cache_get(call, key)
        if response is not None:
            return response, None
        meaning = await self._semantic_query(call)
        if meaning is not None and self.semantic is not None:
            response = await self.semantic.lookup(call, meaning)
        return response, meaning

    async def _semantic_query(self, call: Call) -> SemanticQuery | None:
        """None: no semantic cache for this call (off, trial traffic, nothing to compare)."""
        cache = call.feature.cache
        if (
            self.semantic is None
            or cache is None
            or cache.semantic is None
            or call.request.trial is not None
        ):
            return None
        arm = call.arm
        template = (await self.planner.template(call, arm.template)).ref if arm.template else "-"
        adapter = await self.planner.adapter(call, arm.adapter) if arm.adapter else "-"
        meaning = semantic_query(call, template, adapter, cache.semantic)
        if meaning is None:
            self.accountant.kpis.cache(call.feature_name, "semantic_skip")
        return meaning

    def _ttl(self, call: Call) -> int:
        cache = call.feature.cache
        return (cache.ttl_s if cache is not None else None) or self.default_cache_ttl_s

    async def _cache_get(self, call: Call, key: str | None) -> InvokeResponse | None:
        if key is None or self.cache is None:
            return None
        return await self.cache.lookup(call.feature_name, key, call.answer_id, call.started)

    async def _cache_put(
        self,
        call: Call,
        key: str | None,
        response: InvokeResponse,
        meaning: SemanticQuery | None = None,
    ) -> None:
        if response.verdict == "held":  # its answer waits for a reviewer, per request
            return
        if key is not None and self.cache is not None and call.feature.cache is not None:
            await self.cache.store(call.feature_name, key, response, self._ttl(call))
        if meaning is not None and self.semantic is not None:
            self.semantic.store(call, meaning, response, self._ttl(call))


async def _last(events: AsyncIterator[StreamEvent]) -> InvokeResponse:
    """Drain a run that sends no deltas; its one event is the answer."""
    last: StreamEvent | None = None
    async for event in events:
        last = event
    assert isinstance(last, InvokeResponse)
    return last


def _usage(usage: ChatUsage | None) -> Usage:
    prompt = usage.prompt_tokens if usage is not None else 0
    completion = usage.completion_tokens if usage is not None else 0
    return Usage(prompt, completion, prompt + completion)


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
