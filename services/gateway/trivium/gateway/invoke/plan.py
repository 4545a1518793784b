"""Preparing one road: resolve its references, retrieve, render, and build the upstream body."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from trivium.common.errors import TriviumError
from trivium.gateway.clients.retriever import RetrieverClient, SearchHit
from trivium.gateway.clients.upstream import UpstreamClient, UpstreamPool
from trivium.gateway.invoke.call import Call
from trivium.gateway.invoke.inputs import (
    PASSAGES,
    context_message,
    passage_variables,
    retrieval_query,
    template_variables,
    upstream_messages,
)
from trivium.gateway.policy.model import MODEL_FREE, Arm, Road
from trivium.gateway.telemetry.metrics import KpiRecorder
from trivium.gateway.telemetry.tracing import span
from trivium.registry import ArtifactVersion, Registry, TemplateRenderer
from trivium.registry.errors import RegistryUnavailableError

__all__ = ("ADAPTED", "RETRIEVING", "FeatureMisconfiguredError", "Plan", "Planner")

RETRIEVING: frozenset[Road] = frozenset({"rag", "rag+prompt", "finetune+rag", "extractive"})
ADAPTED: frozenset[Road] = frozenset({"finetune", "finetune+rag"})


class FeatureMisconfiguredError(TriviumError):
    status_code = 500
    code = "feature_misconfigured"
    title = "Feature misconfigured"


@dataclass(frozen=True, slots=True)
class Plan:
    """One road, ready to generate; the stage times are milliseconds."""

    arm: Arm
    upstream: UpstreamClient
    body: dict[str, Any]
    template: ArtifactVersion | None
    adapter: str | None
    hits: list[SearchHit]
    index_version: str | None
    retrieve_ms: float
    rerank_ms: float
    render_ms: float

    @property
    def verifies(self) -> bool:
        return self.arm.route in RETRIEVING and self.arm.retrieval is not None

    @property
    def withholds(self) -> bool:
        """Whether a poorly grounded answer is held back (so a stream must verify first)."""
        return self.arm.retrieval is not None and self.arm.retrieval.on_fail in ("withhold", "hold")


class Planner:
    def __init__(
        self,
        *,
        templates: Registry,
        adapters: Registry,
        renderer: TemplateRenderer,
        upstreams: UpstreamPool,
        retriever: RetrieverClient,
        kpis: KpiRecorder,
    ) -> None:
        self.templates = templates
        self.adapters = adapters
        self.renderer = renderer
        self.upstreams = upstreams
        self.retriever = retriever
        self.kpis = kpis

    async def template(self, call: Call, ref: str) -> ArtifactVersion:
        found = call.references.get(ref)
        if isinstance(found, ArtifactVersion):
            return found
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
        call.references[ref] = template
        return template

    async def adapter(self, call: Call, ref: str) -> str:
        """`name@label` to the exact `name@version` the upstream will serve."""
        found = call.references.get(ref)
        if isinstance(found, str):
            return found
        try:
            exact = (await self.adapters.resolve(ref)).ref
        except RegistryUnavailableError:
            return ref  # the upstream resolves the label itself; lineage keeps the label
        except TriviumError as exc:
            raise FeatureMisconfiguredError(
                f"the policy's adapter {ref} cannot be resolved: {exc.message}", field="adapter"
            ) from exc
        call.references[ref] = exact
        return exact

    async def prepare(self, call: Call, arm: Arm) -> Plan:
        """Everything before generation. A model-free road (extractive) resolves no template
        or adapter and renders nothing: it needs only the retriever."""
        model_free = arm.route in MODEL_FREE
        template = None
        if arm.template is not None and not model_free:
            template = await self.template(call, arm.template)
        adapter = None
        if arm.route in ADAPTED and arm.adapter is not None:
            adapter = await self.adapter(call, arm.adapter)
        upstream = self.upstreams.get(arm.upstream)
        hits: list[SearchHit] = []
        index_version = None
        retrieve_ms = rerank_ms = 0.0
        if arm.route in RETRIEVING and arm.retrieval is not None:
            began = time.perf_counter()
            with span("retrieve", attributes={"trivium.collection": arm.retrieval.collection}) as s:
                try:
                    found = await self.retriever.search(
                        arm.retrieval, retrieval_query(call.request), deadline=call.deadline
                    )
                finally:
                    call.waited_s += time.perf_counter() - began
                if s.is_recording():
                    s.set_attribute("trivium.hits", len(found.hits))
                    if found.index_version:
                        s.set_attribute("trivium.retriever_index", found.index_version)
            hits = _cut(found.hits, arm.retrieval.max_passage_chars)
            index_version = found.index_version
            rerank_ms = found.timings_ms.get("rerank", 0.0)
            retrieve_ms = (time.perf_counter() - began) * 1000 - rerank_ms
        if model_free:
            return Plan(
                arm, upstream, {}, None, None, hits, index_version, retrieve_ms, rerank_ms, 0
            )
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
        body = self._body(call, adapter or upstream.upstream.model, prompt, context)
        render_ms = (time.perf_counter() - began) * 1000
        return Plan(
            arm=arm,
            upstream=upstream,
            body=body,
            template=template,
            adapter=adapter,
            hits=hits,
            index_version=index_version,
            retrieve_ms=retrieve_ms,
            rerank_ms=rerank_ms,
            render_ms=render_ms,
        )

    @staticmethod
    def _body(
        call: Call, model: str, prompt: str | None, context: dict[str, str] | None
    ) -> dict[str, Any]:
        limit = call.feature.limits.max_tokens
        body: dict[str, Any] = {
            "model": model,
            "messages": upstream_messages(call.request, prompt, context),
            "max_tokens": min(call.request.max_tokens or limit, limit),
        }
        temperature = call.request.temperature
        if temperature is None:
            temperature = call.feature.temperature
        if temperature is not None:
            body["temperature"] = temperature
        return body


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
