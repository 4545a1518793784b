"""From a road's generated text to the answer callers get: verify, cite, cost, lineage."""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from trivium.gateway.invoke.call import Call
from trivium.gateway.invoke.cost import answer_cost
from trivium.gateway.invoke.groundedness import Groundedness
from trivium.gateway.invoke.plan import Plan
from trivium.gateway.invoke.schemas import (
    Citation,
    FallbackInfo,
    InvokeResponse,
    Lineage,
    Timings,
    Usage,
    Verdict,
)
from trivium.gateway.policy.model import OnFail

__all__ = ("Generated", "build_answer")

VERDICT_ON_FAIL: dict[OnFail, Verdict] = {"flag": "flagged", "withhold": "withheld", "hold": "held"}


@dataclass(frozen=True, slots=True)
class Generated:
    """What the upstream produced for one road, and how long it took (ms)."""

    text: str
    usage: Usage
    finish_reason: str | None
    model: str
    generate_ms: float


def _verify(
    plan: Plan, text: str, scorer: Groundedness
) -> tuple[float | None, Verdict | None, float]:
    """Groundedness, verdict and the milliseconds it took (nothing for roads without passages)."""
    retrieval = plan.arm.retrieval
    if not plan.verifies or retrieval is None:
        return None, None, 0.0
    began = time.perf_counter()
    groundedness = scorer.score(text, [hit.text for hit in plan.hits])
    verdict: Verdict = "passed"
    floor = retrieval.min_groundedness
    if floor is not None and (groundedness is None or groundedness < floor):
        verdict = VERDICT_ON_FAIL[retrieval.on_fail]
    return groundedness, verdict, (time.perf_counter() - began) * 1000


def build_answer(
    call: Call,
    plan: Plan,
    generated: Generated,
    fallback: FallbackInfo | None,
    scorer: Groundedness,
) -> InvokeResponse:
    groundedness, verdict, verify_ms = _verify(plan, generated.text, scorer)
    trial = call.request.trial is not None
    usage = generated.usage
    template = plan.template.ref if plan.template is not None else None
    return InvokeResponse(
        id=call.answer_id,
        feature=call.feature_name,
        route=plan.arm.route,
        variant=plan.arm.variant,
        template=template,
        adapter=plan.adapter,
        output=None if verdict in ("withheld", "held") else generated.text,
        citations=[
            Citation(
                index=i,
                doc_id=hit.doc_id,
                chunk_id=hit.chunk_id,
                source=hit.source,
                offsets=(hit.start, hit.end),
                score=hit.score,
                title=hit.title,
                text=hit.text if trial else msgspec.UNSET,
            )
            for i, hit in enumerate(plan.hits, start=1)
        ],
        usage=usage,
        cost_usd=answer_cost(
            plan.upstream.upstream.price, usage.prompt_tokens, usage.completion_tokens
        ),
        timings_ms=Timings(
            retrieve=plan.retrieve_ms,
            rerank=plan.rerank_ms,
            render=plan.render_ms,
            generate=generated.generate_ms,
            verify=verify_ms,
            total=(time.perf_counter() - call.started) * 1000,
        ),
        lineage=Lineage(
            policy_hash=call.loaded.hash,
            policy_version=call.loaded.policy.version,
            template=template,
            adapter=plan.adapter,
            retriever_index=plan.index_version,
            upstream=plan.arm.upstream,
        ),
        fallback=fallback,
        groundedness=groundedness,
        verdict=verdict,
        needs_review=verdict == "flagged",
        finish_reason=generated.finish_reason,
    )
