"""The second stage: the names that tie a policy document together, and the runtime policy.

`document.py` has checked every value; this checks what one entry says about another (a
feature's upstream, its variants' arms, fallback and shadow entries), normalises registry
references, and builds the frozen `Policy` the gateway runs, every arm computed.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from trivium.common.contracts.decision import MinQuality, Requirements
from trivium.gateway.policy.document import (
    ROAD_NEEDS,
    FeatureDocument,
    PolicyFile,
    RequirementsFile,
    ResponseCacheFile,
    RetrievalFile,
    TokenPriceFile,
    UpstreamFile,
    VariantFile,
)
from trivium.gateway.policy.errors import PolicyIssue
from trivium.gateway.policy.model import (
    ROADS,
    Arm,
    Callers,
    Feature,
    FusionWeights,
    GpuPrice,
    Guards,
    Limits,
    Policy,
    ResponseCache,
    Retrieval,
    Review,
    Rollout,
    SemanticCache,
    TokenPrice,
    Upstream,
    Variant,
    entry_arm,
)
from trivium.registry.errors import MalformedReferenceError
from trivium.registry.references import parse_reference

__all__ = ("resolve", "with_arms")


def resolve(document: PolicyFile, raw: object) -> tuple[Policy, list[PolicyIssue]]:
    """The runtime policy and every broken cross-reference. `raw` is the file as read: a name
    declared there but dropped from `document` for an error is not reported unknown again."""
    resolver = _Resolver(_keys(raw, "upstreams"))
    features = {
        name: resolver.feature(name, body, _keys(raw, "features", name, "variants"))
        for name, body in document.features.items()
    }
    upstreams = {name: _upstream(body) for name, body in document.upstreams.items()}
    return Policy(version=document.version, upstreams=upstreams, features=features), (
        resolver.issues
    )


def with_arms(policy: Policy) -> Policy:
    """`policy` with every feature's arms computed (only for a policy without issues)."""
    for name, feature in policy.features.items():
        feature.precompute(name)
    return policy


def _keys(raw: object, *path: str) -> frozenset[str]:
    """The string keys of the mapping at `path` in the raw file (none when it is not one)."""
    for part in path:
        raw = raw.get(part) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        return frozenset()
    return frozenset(key for key in raw if isinstance(key, str))


class _Resolver:
    def __init__(self, upstreams: Collection[str]) -> None:
        self.upstreams = upstreams
        self.issues: list[PolicyIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(PolicyIssue(path, message))

    def feature(self, name: str, body: FeatureDocument, declared: Collection[str]) -> Feature:
        path = f"features.{name}"
        feature = Feature(
            route=body.route,
            upstream=self.upstream_name(body.upstream, f"{path}.upstream"),
            template=self.reference(body.template, f"{path}.template"),
            adapter=self.reference(body.adapter, f"{path}.adapter"),
            retrieval=_retrieval(body.retrieval),
            limits=Limits(
                max_input_chars=body.limits.max_input_chars,
                max_tokens=body.limits.max_tokens,
                timeout_s=body.limits.timeout_s,
            ),
            callers=Callers(
                rpm_per_key=body.callers.rpm_per_key,
                tpm_per_key=body.callers.tpm_per_key,
                on_redis_down=body.callers.on_redis_down,
            ),
            variants=self.rollouts(
                {
                    variant: self.variant(spec, f"{path}.variants.{variant}")
                    for variant, spec in body.variants.items()
                },
                body.variants,
                f"{path}.variants",
            ),
            shadow=tuple(body.shadow),
            fallback=tuple(body.fallback),
            cache=_cache(body.cache),
            temperature=body.temperature,
            requirements=_requirements(body.requirements),
            review=Review(body.review.sample_rate, body.review.slo_s),
        )
        arms = {v: feature.arm(name, v) for v in (None, *feature.variants)}
        for variant in feature.variants:
            for need in _missing(arms[variant]):
                self.fail(
                    f"{path}.variants.{variant}.{need}",
                    f"required by route {arms[variant].route} "
                    "(set it on the variant or on the feature)",
                )
        self.entries(feature, arms, declared, path, "shadow")
        self.entries(feature, arms, declared, path, "fallback")
        return feature

    def entries(
        self,
        feature: Feature,
        arms: dict[str | None, Arm],
        declared: Collection[str],
        path: str,
        kind: str,
    ) -> None:
        """Each shadow or fallback entry: a known road or variant, once, that can run."""
        entries = feature.shadow if kind == "shadow" else feature.fallback
        for index, entry in enumerate(entries):
            where = f"{path}.{kind}[{index}]"
            if entry in entries[:index]:
                self.fail(where, f"repeats {entry!r}")
            elif entry in ROADS:
                if kind == "fallback" and entry == feature.route:
                    self.fail(where, f"is the feature's own route {entry}")
                for need in _missing(entry_arm(entry, arms[None], arms)):
                    self.fail(where, f"road {entry} needs {need}, which the feature does not set")
            elif entry not in arms and entry not in declared:
                self.fail(
                    where,
                    f"unknown variant or road {entry!r}"
                    if kind == "shadow"
                    else f"unknown road or variant {entry!r}; roads: {', '.join(ROADS)}",
                )

    def rollouts(
        self, variants: dict[str, Variant], specs: dict[str, VariantFile], path: str
    ) -> dict[str, Variant]:
        """Each variant's `rollout` resolved: one per feature, a control that takes traffic,
        and a registry label to roll back when `rollback_registry` asks for one."""
        rolling = [name for name, spec in specs.items() if spec.rollout is not None]
        for extra in rolling[1:]:
            self.fail(
                f"{path}.{extra}.rollout",
                f"only one variant of a feature may roll out at a time ({rolling[0]} does)",
            )
        if not rolling:
            return variants
        name = rolling[0]
        block = specs[name].rollout
        assert block is not None
        where = f"{path}.{name}.rollout"
        others = {v: spec.weight for v, spec in specs.items() if v != name and spec.weight > 0}
        control = block.control
        if control is None:
            if not others:
                self.fail(where, "needs a control: another variant with a weight above 0")
                return variants
            control = min(others, key=lambda v: (-others[v], v))
        elif control == name:
            self.fail(f"{where}.control", "must be another variant, not the canary itself")
        elif control not in others:
            reason = "has weight 0" if control in specs else "is not a variant of this feature"
            self.fail(f"{where}.control", f"{control!r} {reason}: the control must take traffic")
        if block.rollback_registry and not self.rollback_target(variants[name]):
            self.fail(
                f"{where}.rollback_registry",
                "needs the variant's own template or adapter as name@label (a label to roll back)",
            )
        guards = block.guards
        rollout = Rollout(
            steps=tuple(block.steps),
            control=control,
            min_requests=block.min_requests,
            min_duration_s=block.min_duration_s,
            guard_min_requests=block.guard_min_requests,
            guards=Guards(
                max_error_rate_increase=guards.max_error_rate_increase,
                max_fallback_rate_increase=guards.max_fallback_rate_increase,
                max_p95_latency_ratio=guards.max_p95_latency_ratio,
                max_groundedness_drop=guards.max_groundedness_drop,
                max_cost_ratio=guards.max_cost_ratio,
                max_completion_rate_drop=guards.max_completion_rate_drop,
            ),
            rollback_registry=block.rollback_registry,
        )
        return {**variants, name: msgspec.structs.replace(variants[name], rollout=rollout)}

    @staticmethod
    def rollback_target(variant: Variant) -> bool:
        """Whether the variant names its own template or adapter by label."""
        return any(
            ref is not None and "@" in ref and not ref.rpartition("@")[2].isdigit()
            for ref in (variant.template, variant.adapter)
        )

    def variant(self, spec: VariantFile, path: str) -> Variant:
        return Variant(
            weight=spec.weight,
            route=spec.route,
            template=self.reference(spec.template, f"{path}.template"),
            adapter=self.reference(spec.adapter, f"{path}.adapter"),
            retrieval=_retrieval(spec.retrieval),
            upstream=(
                None
                if spec.upstream is None
                else self.upstream_name(spec.upstream, f"{path}.upstream")
            ),
        )

    def upstream_name(self, name: str, path: str) -> str:
        if name not in self.upstreams:
            known = ", ".join(sorted(self.upstreams)) or "none defined"
            self.fail(path, f"unknown upstream {name!r} (upstreams: {known})")
        return name

    def reference(self, text: str | None, path: str) -> str | None:
        """A registry reference, normalised to `name@label` / `name@version`."""
        if text is None:
            return None
        try:
            return str(parse_reference(text, field=path.rpartition(".")[2]))
        except MalformedReferenceError as exc:
            self.fail(path, exc.message)
            return text


def _missing(arm: Arm) -> tuple[str, ...]:
    """What the arm's road needs that the arm does not set."""
    have = {"template": arm.template, "adapter": arm.adapter, "retrieval": arm.retrieval}
    return tuple(need for need in ROAD_NEEDS[arm.route] if have.get(need) is None)


def _upstream(body: UpstreamFile) -> Upstream:
    price = body.price
    return Upstream(
        url=body.url,
        model=body.model,
        api_key_env=body.api_key_env,
        connect_timeout_s=body.connect_timeout_s,
        read_timeout_s=body.read_timeout_s,
        price=(
            None
            if price is None
            else TokenPrice(price.prompt_per_1k, price.completion_per_1k)
            if isinstance(price, TokenPriceFile)
            else GpuPrice(price.gpu_hour_usd, price.tokens_per_hour)
        ),
    )


def _retrieval(body: RetrievalFile | None) -> Retrieval | None:
    if body is None:
        return None
    weights = body.weights
    return Retrieval(
        collection=body.collection,
        k=body.k,
        mode=body.mode,
        rerank=body.rerank,
        rerank_top=max(20, body.k) if body.rerank_top is None else body.rerank_top,
        weights=None if weights is None else FusionWeights(weights.dense, weights.sparse),
        min_groundedness=body.min_groundedness,
        on_fail=body.on_fail or "flag",
        max_passage_chars=body.max_passage_chars,
    )


def _requirements(body: RequirementsFile | None) -> Requirements | None:
    if body is None:
        return None
    fields = body.model_dump(exclude={"min_quality"})
    quality = body.min_quality
    return Requirements(
        **fields,
        min_quality=None if quality is None else MinQuality(quality.metric, quality.threshold),
    )


def _cache(body: ResponseCacheFile | None) -> ResponseCache | None:
    if body is None:
        return None
    semantic = body.semantic
    return ResponseCache(
        ttl_s=body.ttl_s,
        semantic=None
        if semantic is None
        else SemanticCache(
            threshold=semantic.threshold,
            ttl_s=semantic.ttl_s,
            max_entries=semantic.max_entries,
            text=semantic.text,
        ),
    )
