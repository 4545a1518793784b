"""The routing policy the gateway runs: frozen structs built from the file by `resolve.py`.

The file's shape and rules live in `document.py`; these are the validated, resolved objects a
request reads (template and adapter references normalised, every arm computed at load time).
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from trivium.common.contracts.decision import Requirements

__all__ = (
    "MODEL_FREE",
    "ROADS",
    "Arm",
    "Callers",
    "Feature",
    "FusionWeights",
    "GpuPrice",
    "Guards",
    "Limits",
    "Mode",
    "OnFail",
    "Policy",
    "ResponseCache",
    "Retrieval",
    "Review",
    "Road",
    "Rollout",
    "SemanticCache",
    "TokenPrice",
    "Upstream",
    "Variant",
    "entry_arm",
    "policy_hash",
)

Road = Literal["prompt", "rag", "finetune", "rag+prompt", "finetune+rag", "extractive"]
ROADS: tuple[Road, ...] = ("prompt", "rag", "finetune", "rag+prompt", "finetune+rag", "extractive")
MODEL_FREE: frozenset[Road] = frozenset({"extractive"})
"""Roads that call no upstream model: they survive its death."""
Mode = Literal["dense", "sparse", "hybrid"]
OnFail = Literal["flag", "withhold", "hold"]


class TokenPrice(msgspec.Struct, frozen=True, tag_field="kind", tag="tokens"):
    """A hosted API's list price, USD per 1,000 tokens. (`kind` is inferred from the keys.)"""

    prompt_per_1k: float
    completion_per_1k: float


class GpuPrice(msgspec.Struct, frozen=True, tag_field="kind", tag="gpu"):
    """Self-hosted: USD per GPU hour and the tokens an hour serves."""

    gpu_hour_usd: float
    tokens_per_hour: int


class Upstream(msgspec.Struct, frozen=True):
    url: str
    model: str
    api_key_env: str | None = None
    """The name of the environment variable holding the key, never the key."""
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 60.0
    price: TokenPrice | GpuPrice | None = None


class FusionWeights(msgspec.Struct, frozen=True):
    dense: float
    sparse: float


class Retrieval(msgspec.Struct, frozen=True):
    collection: str
    k: int = 5
    mode: Mode = "hybrid"
    rerank: bool = False
    rerank_top: int = 20
    weights: FusionWeights | None = None
    """Hybrid fusion weights; unset: the retriever's defaults."""
    min_groundedness: float | None = None
    on_fail: OnFail = "flag"
    """With min_groundedness: flag a poorly grounded answer, withhold it, or hold it for a
    reviewer (the caller gets 202 and a review id)."""
    max_passage_chars: int | None = None
    """Cut each passage to this many characters in the prompt (a small model's context)."""


class Review(msgspec.Struct, frozen=True):
    """The human review queue: flagged, withheld and held answers always enter it."""

    sample_rate: float = 0.0
    """The share of passing answers sent to reviewers too, to calibrate the threshold."""
    slo_s: int = 4 * 3600
    """A pending review older than this fires `TriviumReviewOverdue`."""


class Limits(msgspec.Struct, frozen=True):
    max_input_chars: int = 16_000
    max_tokens: int = 512
    timeout_s: float = 30.0


class Callers(msgspec.Struct, frozen=True):
    """Per-key limits on one feature (beside each key's own), and the Redis-down policy."""

    rpm_per_key: int | None = None
    tpm_per_key: int | None = None
    on_redis_down: Literal["fail_open", "fail_closed"] = "fail_open"


class SemanticCache(msgspec.Struct, frozen=True):
    threshold: float
    ttl_s: int | None = None
    """Unset: the exact cache's TTL."""
    max_entries: int = 10_000
    text: str | None = None
    """The input variable compared by meaning; unset: the only string one."""


class ResponseCache(msgspec.Struct, frozen=True):
    ttl_s: int | None = None
    """Unset: the gateway's `cache.default_ttl_s`."""
    semantic: SemanticCache | None = None


class Guards(msgspec.Struct, frozen=True):
    """A canary's limits against its control over the same window; None: not checked."""

    max_error_rate_increase: float | None = 0.02
    max_fallback_rate_increase: float | None = 0.05
    max_p95_latency_ratio: float | None = None
    max_groundedness_drop: float | None = None
    max_cost_ratio: float | None = None
    max_completion_rate_drop: float | None = None


class Rollout(msgspec.Struct, frozen=True):
    """A canary's steps (percent of the feature's traffic), their minimums and its guards."""

    steps: tuple[float, ...]
    control: str
    """Resolved: the named variant, else the feature's heaviest other one."""
    min_requests: int = 100
    min_duration_s: float = 300.0
    guard_min_requests: int = 20
    guards: Guards = Guards()
    rollback_registry: bool = False


class Variant(msgspec.Struct, frozen=True):
    """One arm of an experiment: a weight and what it changes from its feature (unset: same)."""

    weight: float
    route: Road | None = None
    template: str | None = None
    adapter: str | None = None
    retrieval: Retrieval | None = None
    """Replaces the feature's whole retrieval block."""
    upstream: str | None = None
    rollout: Rollout | None = None
    """A canary: its share follows the rollout controller's step, not `weight`."""


class Arm(msgspec.Struct, frozen=True):
    """What one request of a feature runs: the feature with its variant's overrides applied."""

    feature: str
    variant: str | None
    route: Road
    template: str | None
    adapter: str | None
    retrieval: Retrieval | None
    upstream: str
    limits: Limits


class _Arms(msgspec.Struct, frozen=True):
    """A feature's arms, computed once when the policy loads (see `Feature.precompute`)."""

    feature: str
    by_variant: dict[str | None, Arm]
    fallbacks: dict[str | None, tuple[Arm, ...]]
    shadows: dict[str | None, tuple[tuple[str, Arm], ...]]


class Feature(msgspec.Struct, frozen=True, dict=True):
    """A feature as the policy file sets it. Its arms are precomputed when the policy loads
    (kept outside the struct's fields, so they are neither encoded nor hashed)."""

    route: Road
    upstream: str
    template: str | None = None
    """A registry reference, normalised to `name@label` or `name@version`."""
    adapter: str | None = None
    retrieval: Retrieval | None = None
    limits: Limits = Limits()
    callers: Callers = Callers()
    variants: dict[str, Variant] = {}
    shadow: tuple[str, ...] = ()
    """Variant names or roads run on a copy of the request, off the response path."""
    fallback: tuple[str, ...] = ()
    """Roads or variant names, tried in order when the road before fails."""
    cache: ResponseCache | None = None
    """Exact-match answers from Redis; unset: every request is generated."""
    temperature: float | None = None
    """Sampling temperature when the request sets none; unset: the upstream's default."""
    requirements: Requirements | None = None
    """What the feature needs; read by the decision report, never by a request."""
    review: Review = Review()

    def precompute(self, name: str) -> Feature:
        """Compute every arm, fallback chain and shadow list of this feature named `name`."""
        by_variant = {v: self._build_arm(name, v) for v in (None, *self.variants)}
        self.__dict__["_arms"] = _Arms(
            feature=name,
            by_variant=by_variant,
            fallbacks={v: self._fallback_arms(arm, by_variant) for v, arm in by_variant.items()},
            shadows={v: self._shadow_arms(arm, by_variant) for v, arm in by_variant.items()},
        )
        return self

    def arm(self, name: str, variant: str | None = None) -> Arm:
        """The arm of `variant` (None: the feature's own); `name` is the feature's name."""
        arms = self._precomputed(name)
        if arms is not None:
            return arms.by_variant[variant]
        return self._build_arm(name, variant)

    def fallback_arms(self, primary: Arm) -> tuple[Arm, ...]:
        """The fallback chain after `primary`, in order, without repeats or `primary` itself."""
        arms = self._precomputed(primary.feature)
        if arms is not None and arms.by_variant.get(primary.variant) == primary:
            return arms.fallbacks[primary.variant]
        return self._fallback_arms(primary, self._all_arms(primary.feature))

    def shadow_arms(self, primary: Arm) -> tuple[tuple[str, Arm], ...]:
        """Each shadow entry with the arm it runs, except those that would run `primary`."""
        arms = self._precomputed(primary.feature)
        if arms is not None and arms.by_variant.get(primary.variant) == primary:
            return arms.shadows[primary.variant]
        return self._shadow_arms(primary, self._all_arms(primary.feature))

    def fallback_arm(self, name: str, entry: str, primary: Arm) -> Arm:
        """One fallback entry as an arm: a variant as it is, a road as `primary` on that road."""
        return entry_arm(entry, primary, self._all_arms(name))

    def _precomputed(self, name: str) -> _Arms | None:
        arms: _Arms | None = self.__dict__.get("_arms")
        return arms if arms is not None and arms.feature == name else None

    def _all_arms(self, name: str) -> dict[str | None, Arm]:
        arms = self._precomputed(name)
        if arms is not None:
            return arms.by_variant
        return {v: self._build_arm(name, v) for v in (None, *self.variants)}

    def _build_arm(self, name: str, variant: str | None) -> Arm:
        chosen = self.variants[variant] if variant is not None else Variant(weight=1.0)
        return Arm(
            feature=name,
            variant=variant,
            route=chosen.route or self.route,
            template=chosen.template or self.template,
            adapter=chosen.adapter or self.adapter,
            retrieval=chosen.retrieval or self.retrieval,
            upstream=chosen.upstream or self.upstream,
            limits=self.limits,
        )

    def _fallback_arms(self, primary: Arm, arms: dict[str | None, Arm]) -> tuple[Arm, ...]:
        chain: list[Arm] = [primary]
        for entry in self.fallback:
            arm = entry_arm(entry, primary, arms)
            if arm not in chain:
                chain.append(arm)
        return tuple(chain[1:])

    def _shadow_arms(
        self, primary: Arm, arms: dict[str | None, Arm]
    ) -> tuple[tuple[str, Arm], ...]:
        own = arms[None]
        resolved = ((entry, entry_arm(entry, own, arms)) for entry in self.shadow)
        return tuple((entry, arm) for entry, arm in resolved if arm != primary)


def entry_arm(entry: str, base: Arm, variant_arms: dict[str | None, Arm]) -> Arm:
    """A fallback or shadow entry as the arm it runs: a road is `base` on that road, a variant
    name is that variant's arm. (Roads win: a variant may not be named like one.)"""
    if entry in ROADS:
        return msgspec.structs.replace(base, route=ROADS[ROADS.index(entry)])
    return variant_arms[entry]


class Policy(msgspec.Struct, frozen=True):
    version: int | None = None
    upstreams: dict[str, Upstream] = {}
    features: dict[str, Feature] = {}


def policy_hash(policy: Policy) -> str:
    """Short sha256 of the policy's canonical JSON: equal policies hash equal, however written."""
    return hashlib.sha256(msgspec.json.encode(policy, order="sorted")).hexdigest()[:16]
