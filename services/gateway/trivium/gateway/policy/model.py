"""The routing policy as validated, immutable structs (built only by `loader.py`)."""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

__all__ = (
    "MODES",
    "ON_FAIL",
    "ROADS",
    "ROAD_NEEDS",
    "Arm",
    "Feature",
    "FusionWeights",
    "GpuPrice",
    "Limits",
    "Mode",
    "Need",
    "OnFail",
    "Policy",
    "ResponseCache",
    "Retrieval",
    "Road",
    "TokenPrice",
    "Upstream",
    "Variant",
    "policy_hash",
)

Road = Literal["prompt", "rag", "finetune", "rag+prompt", "finetune+rag"]
ROADS: tuple[Road, ...] = ("prompt", "rag", "finetune", "rag+prompt", "finetune+rag")
Need = Literal["template", "retrieval", "adapter"]
Mode = Literal["dense", "sparse", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "sparse", "hybrid")
OnFail = Literal["flag", "withhold"]
ON_FAIL: tuple[OnFail, ...] = ("flag", "withhold")
ROAD_NEEDS: dict[Road, tuple[Need, ...]] = {
    "prompt": ("template",),
    "rag": ("template", "retrieval"),
    "finetune": ("adapter",),
    "rag+prompt": ("template", "retrieval"),
    "finetune+rag": ("adapter", "retrieval"),
}


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
    """With min_groundedness: flag a poorly grounded answer, or withhold it."""
    max_passage_chars: int | None = None
    """Cut each passage to this many characters in the prompt (a small model's context)."""


class Limits(msgspec.Struct, frozen=True):
    max_input_chars: int = 16_000
    max_tokens: int = 512
    timeout_s: float = 30.0


class ResponseCache(msgspec.Struct, frozen=True):
    ttl_s: int | None = None
    """Unset: the gateway's `cache.default_ttl_s`."""


class Variant(msgspec.Struct, frozen=True):
    """One arm of an experiment: a weight and what it changes from its feature (unset: same)."""

    weight: float
    route: Road | None = None
    template: str | None = None
    adapter: str | None = None
    retrieval: Retrieval | None = None
    """Replaces the feature's whole retrieval block."""
    upstream: str | None = None


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

    def missing(self, road: Road | None = None) -> tuple[Need, ...]:
        """What `road` (default: this arm's route) needs that this arm does not set."""
        have = {
            "template": self.template is not None,
            "adapter": self.adapter is not None,
            "retrieval": self.retrieval is not None,
        }
        return tuple(need for need in ROAD_NEEDS[road or self.route] if not have[need])


class Feature(msgspec.Struct, frozen=True):
    route: Road
    upstream: str
    template: str | None = None
    """A registry reference, normalised to `name@label` or `name@version`."""
    adapter: str | None = None
    retrieval: Retrieval | None = None
    limits: Limits = Limits()
    variants: dict[str, Variant] = {}
    shadow: tuple[str, ...] = ()
    """Variant names or roads run on a copy of the request, off the response path."""
    fallback: tuple[str, ...] = ()
    """Roads or variant names, tried in order when the road before fails."""
    cache: ResponseCache | None = None
    """Exact-match answers from Redis; unset: every request is generated."""
    temperature: float | None = None
    """Sampling temperature when the request sets none; unset: the upstream's default."""

    def fallback_arm(self, name: str, entry: str, primary: Arm) -> Arm:
        """A fallback entry as an arm: a variant as it is, a road as `primary` on that road."""
        if entry in ROADS:
            return msgspec.structs.replace(primary, route=ROADS[ROADS.index(entry)])
        return self.arm(name, entry)

    def fallback_arms(self, primary: Arm) -> tuple[Arm, ...]:
        arms = [primary]
        for entry in self.fallback:
            arm = self.fallback_arm(primary.feature, entry, primary)
            if arm not in arms:
                arms.append(arm)
        return tuple(arms[1:])

    def shadow_arms(self, primary: Arm) -> tuple[tuple[str, Arm], ...]:
        base = self.arm(primary.feature)
        found = []
        for entry in self.shadow:
            if entry in self.variants:
                arm = self.arm(primary.feature, entry)
            else:
                arm = msgspec.structs.replace(base, route=ROADS[ROADS.index(entry)])
            if arm != primary:
                found.append((entry, arm))
        return tuple(found)

    def arm(self, name: str, variant: str | None = None) -> Arm:
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


class Policy(msgspec.Struct, frozen=True):
    version: int | None = None
    upstreams: dict[str, Upstream] = {}
    features: dict[str, Feature] = {}


def policy_hash(policy: Policy) -> str:
    """Short sha256 of the policy's canonical JSON: equal policies hash equal, however written."""
    return hashlib.sha256(msgspec.json.encode(policy, order="sorted")).hexdigest()[:16]
