"""The policy file's shape and rules: a pydantic model (it also gives editors a JSON Schema).

One class per road, told apart by `route`; each declares as required what its road needs.
Rules that tie names across the file (upstreams, variants, fallback and shadow entries,
registry references) are checked by `resolve.py` once this model has read the file.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from trivium.common.contracts.decision import KnowledgePace, OutputFormat, QualityMetric
from trivium.gateway.policy.model import ROADS, Mode, OnFail, Road

__all__ = (
    "COMBINATION",
    "PATTERN_MESSAGES",
    "ROAD_CLASSES",
    "ROAD_NEEDS",
    "WAIVE_COMBINATIONS",
    "ExtractiveFeature",
    "FeatureDocument",
    "FeatureFile",
    "FinetuneFeature",
    "FinetuneRagFeature",
    "FusionWeightsFile",
    "GpuPriceFile",
    "GuardsFile",
    "LimitsFile",
    "PolicyFile",
    "PromptFeature",
    "RagFeature",
    "RagPromptFeature",
    "RequirementsFile",
    "ResponseCacheFile",
    "RetrievalFile",
    "RolloutFile",
    "SemanticCacheFile",
    "TokenPriceFile",
    "UpstreamFile",
    "VariantFile",
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
COLLECTION_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
NAME_HINT = "use 1-63 of a-z 0-9 -, starting with a letter or digit"
PATTERN_MESSAGES = {
    NAME_PATTERN: "invalid name {value!r}: " + NAME_HINT,
    COLLECTION_PATTERN: "invalid value {value!r}: " + NAME_HINT.replace("0-9 -", "0-9 _ -"),
    ENV_VAR_PATTERN: "invalid value {value!r}: the name of an environment variable",
}
"""The message for a value that does not match each pattern (used by `validation.py`)."""

COMBINATION = "policy_combination"
"""The error type of a rule about how a mapping's entries combine (see `validation.py`)."""
WAIVE_COMBINATIONS = "waive_combinations"
"""Validation context key: skip the COMBINATION rules (to read on past their errors)."""

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1)]
Reference = Text
"""A registry reference (`name`, `name@label`, `name@version`), normalised by `resolve.py`."""


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError(
            "policy_value", "must be an http(s) URL with a host (got {url})", {"url": repr(url)}
        )
    return url


class TokenPriceFile(_File):
    """A hosted API's list price, USD per 1,000 tokens."""

    prompt_per_1k: float = Field(ge=0, le=1_000)
    completion_per_1k: float = Field(ge=0, le=1_000)


class GpuPriceFile(_File):
    """Self-hosted: USD per GPU hour and the tokens an hour serves."""

    gpu_hour_usd: float = Field(ge=0, le=10_000)
    tokens_per_hour: int = Field(ge=1, le=10**12)


def _price_kind(value: object) -> str:
    """A price with any GPU key is a GPU price (its other keys then are unknown)."""
    if isinstance(value, GpuPriceFile) or (
        isinstance(value, dict) and not GpuPriceFile.model_fields.keys().isdisjoint(value)
    ):
        return "gpu"
    return "tokens"


Price = Annotated[
    Annotated[TokenPriceFile, Tag("tokens")] | Annotated[GpuPriceFile, Tag("gpu")],
    Discriminator(_price_kind),
]


class UpstreamFile(_File):
    url: Annotated[Text, AfterValidator(_http_url)]
    model: Text
    api_key_env: Annotated[str, StringConstraints(pattern=ENV_VAR_PATTERN)] | None = None
    """The name of the environment variable holding the key, never the key."""
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    read_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    price: Price | None = None


class FusionWeightsFile(_File):
    dense: float = Field(gt=0, le=100)
    sparse: float = Field(gt=0, le=100)


class RetrievalFile(_File):
    collection: Annotated[str, StringConstraints(pattern=COLLECTION_PATTERN)]
    k: int = Field(default=5, ge=1, le=100)
    mode: Mode = "hybrid"
    rerank: bool = False
    rerank_top: int | None = Field(default=None, ge=1, le=1000)
    """Candidates the re-ranker picks k of; unset: max(20, k)."""
    weights: FusionWeightsFile | None = None
    """Hybrid fusion weights; unset: the retriever's defaults."""
    min_groundedness: float | None = Field(default=None, ge=0, le=1)
    on_fail: OnFail | None = None
    """With min_groundedness: flag (the default) a poorly grounded answer, withhold it, or
    hold it for a reviewer (the caller gets 202 and a review id)."""
    max_passage_chars: int | None = Field(default=None, ge=20, le=100_000)
    """Cut each passage to this many characters in the prompt (a small model's context)."""

    @field_validator("rerank_top")
    @classmethod
    def _at_least_k(cls, rerank_top: int | None, info: ValidationInfo) -> int | None:
        k = info.data.get("k")
        if rerank_top is not None and info.data.get("rerank") and k is not None and rerank_top < k:
            raise PydanticCustomError(
                "policy_value", "must be at least k ({k}): re-ranking picks k of them", {"k": k}
            )
        return rerank_top

    @field_validator("weights")
    @classmethod
    def _only_hybrid(
        cls, weights: FusionWeightsFile | None, info: ValidationInfo
    ) -> FusionWeightsFile | None:
        mode = info.data.get("mode")
        if weights is not None and mode is not None and mode != "hybrid":
            raise PydanticCustomError(
                "policy_value", "only apply to mode hybrid (mode is {mode})", {"mode": mode}
            )
        return weights

    @field_validator("on_fail")
    @classmethod
    def _needs_threshold(cls, on_fail: OnFail | None, info: ValidationInfo) -> OnFail | None:
        threshold_unset = "min_groundedness" in info.data and info.data["min_groundedness"] is None
        if on_fail is not None and threshold_unset:
            raise PydanticCustomError("policy_value", "needs min_groundedness")
        return on_fail


class ReviewFile(_File):
    sample_rate: float = Field(default=0.0, ge=0, le=1)
    """The share of passing answers also sent to reviewers (flagged, withheld and held ones
    always are)."""
    slo_s: int = Field(default=4 * 3600, ge=60, le=30 * 24 * 3600)
    """How long a review may wait before the overdue alert fires."""


class LimitsFile(_File):
    max_input_chars: int = Field(default=16_000, ge=1, le=1_000_000)
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    timeout_s: float = Field(default=30.0, gt=0, le=600)


class CallersFile(_File):
    """Per-key limits on this feature, beside each key's own (every replica counts together)."""

    rpm_per_key: int | None = Field(default=None, ge=1, le=10_000_000)
    """Requests per window any one key may send to this feature; unset: only the key's."""
    tpm_per_key: int | None = Field(default=None, ge=1, le=1_000_000_000)
    """Tokens per window any one key may spend on this feature; unset: only the key's."""
    on_redis_down: Literal["fail_open", "fail_closed"] = "fail_open"
    """When the shared counters cannot be reached: fail_open admits under a local
    per-process limit (counted), fail_closed answers 503."""


DEFAULT_SEMANTIC_THRESHOLD = 0.94
"""Chosen on the paraphrase set (`load/bench_semantic_cache.py`; README, Semantic cache)."""


class SemanticCacheFile(_File):
    """Answers replayed for a question of the same meaning, within an exact scope: feature,
    variant, route, template and adapter versions, policy hash, the retriever's index version
    on RAG roads, every message but the last user turn (or every other input variable)."""

    threshold: float = Field(default=DEFAULT_SEMANTIC_THRESHOLD, ge=0.5, le=1)
    """The least cosine similarity of the compared text that counts as the same question."""
    ttl_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Unset: the exact cache's TTL."""
    max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    """The feature's namespace keeps at most this many answers (oldest evicted)."""
    text: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    """For `input` requests: the variable compared by meaning; unset: the only string one."""


class ResponseCacheFile(_File):
    ttl_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Unset: the gateway's `cache.default_ttl_s`."""
    semantic: SemanticCacheFile | None = None
    """Opt-in: also replay answers to paraphrases (see `SemanticCacheFile`)."""


def _cache_switch(value: object) -> object:
    """`cache: true` is the gateway's default TTL, `cache: false` is off."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


CacheSetting = Annotated[
    ResponseCacheFile | None,
    BeforeValidator(_cache_switch, json_schema_input_type=bool | ResponseCacheFile | None),
]


class MinQualityFile(_File):
    metric: QualityMetric
    """A quality KPI of the trial's arm summaries (higher is better)."""
    threshold: float = Field(ge=0, le=1)


class RequirementsFile(_File):
    """What the feature needs, which `trivium decide` checks each road of a trial against."""

    p95_latency_ms: float | None = Field(default=None, gt=0, le=600_000)
    max_cost_per_1k_usd: float | None = Field(default=None, ge=0, le=1_000_000)
    min_quality: MinQualityFile | None = None
    max_hallucination_rate: float | None = Field(default=None, ge=0, le=1)
    """Ungrounded answers on retrieval roads, labels outside the set elsewhere."""
    needs_citations: bool = False
    knowledge_changes: KnowledgePace | None = None
    """How often what the answers rest on changes: never, monthly, weekly, daily, live."""
    output_format: OutputFormat | None = None
    regulated: bool = False
    monthly_requests: int | None = Field(default=None, ge=0, le=10**12)
    """The expected volume (the ROI is computed at it)."""


def _not_a_road(name: str) -> str:
    if name in ROADS:
        raise PydanticCustomError("policy_value", "a variant must not be named like a road")
    return name


class GuardsFile(_File):
    """A canary's limits against its control over the same window; unset: not checked."""

    max_error_rate_increase: float | None = Field(default=0.02, ge=0, le=1)
    """Canary error rate minus the control's."""
    max_fallback_rate_increase: float | None = Field(default=0.05, ge=0, le=1)
    """Canary fallback rate minus the control's (a canary whose road fails falls back)."""
    max_p95_latency_ratio: float | None = Field(default=None, gt=0, le=1000)
    """Canary P95 latency over the control's."""
    max_groundedness_drop: float | None = Field(default=None, ge=0, le=1)
    """Control mean groundedness minus the canary's (where both have scores)."""
    max_cost_ratio: float | None = Field(default=None, gt=0, le=1000)
    """Canary mean cost per request over the control's."""
    max_completion_rate_drop: float | None = Field(default=None, ge=0, le=1)
    """Control online completion rate minus the canary's (where both have reports)."""


def _rising_steps(steps: list[float]) -> list[float]:
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise PydanticCustomError(
            "policy_value", "must rise strictly (got {steps})", {"steps": steps}
        )
    return steps


Percent = Annotated[float, Field(gt=0, le=100)]


class RolloutFile(_File):
    """Move a variant's share of traffic up step by step while its guards hold against the
    control; roll it back at once when one fails (`trivium.gateway.rollouts`)."""

    steps: Annotated[
        list[Percent], Field(min_length=1, max_length=20), AfterValidator(_rising_steps)
    ]
    """Percent of the feature's traffic at each step, rising; the last is where it ends."""
    min_requests: int = Field(default=100, ge=1, le=1_000_000_000)
    """Canary requests each step must see before it advances."""
    min_duration_s: float = Field(default=300.0, ge=0, le=30 * 24 * 3600)
    """Seconds each step lasts at least."""
    guard_min_requests: int = Field(default=20, ge=1, le=1_000_000)
    """Canary requests in the step's window before its guards are judged."""
    control: Name | None = None
    """The variant it is compared with; unset: the feature's heaviest other variant."""
    guards: GuardsFile = GuardsFile()
    rollback_registry: bool = False
    """On rollback, also roll back the variant's own template or adapter label."""


class VariantFile(_File):
    """One arm of an experiment: a weight and what it changes from its feature (unset: same)."""

    weight: float = Field(ge=0, le=1_000_000)
    route: Road | None = None
    template: Reference | None = None
    adapter: Reference | None = None
    retrieval: RetrievalFile | None = None
    """Replaces the feature's whole retrieval block."""
    upstream: Text | None = None
    rollout: RolloutFile | None = None
    """A canary: its share follows the rollout's steps, not `weight`."""


def _some_weight(variants: dict[str, VariantFile], info: ValidationInfo) -> dict[str, VariantFile]:
    if not variants:
        raise PydanticCustomError("policy_value", "must name at least one variant")
    waived = bool(info.context and info.context.get(WAIVE_COMBINATIONS))
    if not waived and not any(variant.weight > 0 for variant in variants.values()):
        raise PydanticCustomError(COMBINATION, "at least one weight must be above 0")
    return variants


Variants = Annotated[
    dict[Annotated[Name, AfterValidator(_not_a_road)], VariantFile], AfterValidator(_some_weight)
]


class FeatureDocument(_File):
    """What every road's feature may set; each road's class makes its needs required."""

    route: Road
    upstream: Text
    """The name of an entry of `upstreams`."""
    template: Reference | None = None
    adapter: Reference | None = None
    retrieval: RetrievalFile | None = None
    limits: LimitsFile = LimitsFile()
    callers: CallersFile = CallersFile()
    """Per-key limits on this feature, and what to do when Redis is down."""
    variants: Variants = {}
    shadow: list[Text] = []
    """Variant names or roads run on a copy of the request, off the response path."""
    fallback: list[Text] = []
    """Roads or variant names, tried in order when the road before fails."""
    cache: CacheSetting = None
    """Exact-match answers from Redis: true, false, or {ttl_s}; unset: off."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature when the request sets none; unset: the upstream's default."""
    requirements: RequirementsFile | None = None
    """What the feature needs (latency, cost, quality, ...): the decision report's yardstick."""
    review: ReviewFile = ReviewFile()
    """The human review queue: a sample of passing answers, and the pending reviews' SLO."""


class PromptFeature(FeatureDocument):
    route: Literal["prompt"]
    template: Reference


class RagFeature(FeatureDocument):
    route: Literal["rag"]
    template: Reference
    retrieval: RetrievalFile


class FinetuneFeature(FeatureDocument):
    route: Literal["finetune"]
    adapter: Reference


class RagPromptFeature(FeatureDocument):
    route: Literal["rag+prompt"]
    template: Reference
    retrieval: RetrievalFile


class FinetuneRagFeature(FeatureDocument):
    route: Literal["finetune+rag"]
    adapter: Reference
    retrieval: RetrievalFile


class ExtractiveFeature(FeatureDocument):
    """The top passages themselves, numbered and cited, with no model: an answer that
    survives the model's death (a fallback), or a regulated feature's verbatim road."""

    route: Literal["extractive"]
    retrieval: RetrievalFile


FeatureFile = Annotated[
    PromptFeature
    | RagFeature
    | FinetuneFeature
    | RagPromptFeature
    | FinetuneRagFeature
    | ExtractiveFeature,
    Field(discriminator="route"),
]


def _road_of(cls: type[FeatureDocument]) -> Road:
    [road] = get_args(cls.model_fields["route"].annotation)
    return ROADS[ROADS.index(road)]


ROAD_CLASSES: dict[Road, type[FeatureDocument]] = {
    _road_of(cls): cls for cls in get_args(get_args(FeatureFile)[0])
}
ROAD_NEEDS: dict[Road, tuple[str, ...]] = {
    road: tuple(
        name
        for name, field in cls.model_fields.items()
        if field.is_required() and not FeatureDocument.model_fields[name].is_required()
    )
    for road, cls in ROAD_CLASSES.items()
}
"""What each road needs that a feature may otherwise leave unset (template, adapter, retrieval)."""


class PolicyFile(_File):
    """The routing policy file: upstreams to call and features routed over them."""

    version: int | None = Field(default=None, ge=0)
    upstreams: dict[Name, UpstreamFile] = {}
    features: dict[Name, FeatureFile] = {}
