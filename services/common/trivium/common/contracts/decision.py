"""A feature's decision on the wire: its trial's roads checked against the requirements its
policy declares, the framework's rules that fired, the ROI at the declared volume, and a
recommendation on the staged path prompt -> RAG -> fine-tune -> hybrid.

The gateway builds it (`GET /v1/features/{feature}/decision?trial=ID`) from a finished
`TrialRecord` and the feature's policy entry; `trivium decide` renders it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from trivium.common.contracts.trials import TrialRecord

__all__ = (
    "KNOWLEDGE_PACES",
    "OUTPUT_FORMATS",
    "QUALITY_METRICS",
    "STAGES",
    "BreakEven",
    "Check",
    "Decision",
    "KnowledgePace",
    "MinQuality",
    "OutputFormat",
    "QualityMetric",
    "Recommendation",
    "Requirements",
    "RoadRoi",
    "RuleOutcome",
    "Stage",
    "StageView",
    "Verdict",
)

QualityMetric = Literal[
    "accuracy",
    "macro_f1",
    "exact_match",
    "token_f1",
    "recall_at_k",
    "mrr",
    "judge_faithfulness",
    "judge_correctness",
]
QUALITY_METRICS: tuple[QualityMetric, ...] = (
    "accuracy",
    "macro_f1",
    "exact_match",
    "token_f1",
    "recall_at_k",
    "mrr",
    "judge_faithfulness",
    "judge_correctness",
)
"""The `ArmSummary` members a `min_quality` requirement may name (higher is better)."""
KnowledgePace = Literal["never", "monthly", "weekly", "daily", "live"]
KNOWLEDGE_PACES: tuple[KnowledgePace, ...] = ("never", "monthly", "weekly", "daily", "live")
"""Slowest first."""
OutputFormat = Literal["free", "structured", "label"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("free", "structured", "label")
Verdict = Literal["meets", "misses", "undecided", "unmeasured"]
"""`undecided`: the 95% interval straddles the threshold; `unmeasured`: the trial has no such
number for this arm."""
Stage = Literal["prompt", "rag", "finetune", "hybrid"]
STAGES: tuple[Stage, ...] = ("prompt", "rag", "finetune", "hybrid")


class MinQuality(msgspec.Struct, frozen=True):
    metric: QualityMetric
    threshold: float


class Requirements(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a feature declares it needs (the policy's `requirements:` block); None: not said."""

    p95_latency_ms: float | None = None
    max_cost_per_1k_usd: float | None = None
    min_quality: MinQuality | None = None
    max_hallucination_rate: float | None = None
    """Ungrounded answers on retrieval roads, labels outside the set elsewhere."""
    needs_citations: bool = False
    knowledge_changes: KnowledgePace | None = None
    output_format: OutputFormat | None = None
    regulated: bool = False
    monthly_requests: int | None = None


class Check(msgspec.Struct, frozen=True, omit_defaults=True):
    """One arm against one requirement."""

    arm: str
    requirement: str
    """`p95_latency_ms`, `max_cost_per_1k_usd`, `min_quality`, `max_hallucination_rate`."""
    threshold: float
    verdict: Verdict
    measured: float | None = None
    low: float | None = None
    """The 95% interval, when the measure has one (latency percentiles do not)."""
    high: float | None = None
    metric: str | None = None
    """What was measured: the quality metric, or `ungrounded` / `out_of_labels`."""


class RuleOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """A rule of the framework that applies to this feature, and what it did."""

    rule: str
    """The rule's function name in `trivium.gateway.decision.rules`."""
    text: str
    """The rule as the framework states it."""
    citation: str
    """Where the rule is written: `module:function`."""
    finding: str
    """Why it applies here, with this feature's facts."""
    favours: list[str] = []
    """Arms this rule favours."""
    excludes: list[str] = []
    """Arms this rule rules out."""
    actions: list[str] = []
    """Policy changes the rule asks for."""


class RoadRoi(msgspec.Struct, frozen=True, omit_defaults=True):
    arm: str
    road: str | None
    """The road the arm runs (None: an arm the current policy no longer has)."""
    cost_per_1k_usd: float
    monthly_cost_usd: float | None = None
    """At the declared `monthly_requests`."""
    one_off_usd: float | None = None
    """The fine-tune's training cost, for adapter arms whose trial recorded it."""
    p95_ms: float | None = None
    latency_headroom_ms: float | None = None
    """The SLO minus the measured P95 (negative: over the SLO)."""


class BreakEven(msgspec.Struct, frozen=True, omit_defaults=True):
    """When an adapter's lower per-request cost repays its training, against another arm."""

    adapter: str
    versus: str
    training_cost_usd: float
    saving_per_1k_usd: float
    """versus's cost per 1k minus the adapter's (<= 0: it never repays)."""
    break_even_requests: float | None = None
    """training cost / saving per request; None when it never repays."""
    months_at_declared_volume: float | None = None


class StageView(msgspec.Struct, frozen=True, omit_defaults=True):
    stage: Stage
    roads: list[str]
    arms: list[str]
    """The trial's arms on this stage."""
    current: bool
    """The feature's policy route is on this stage."""
    recommended: bool
    best_verdict: Verdict | None = None
    """The best of this stage's arms: meets every requirement, else undecided, else misses."""


class Recommendation(msgspec.Struct, frozen=True, omit_defaults=True):
    arm: str | None
    """The arm to run (None: none of the measured ones; see `road`)."""
    road: str | None
    stage: Stage | None
    reasons: list[str]
    confident: bool
    """Every requirement is met outright (no undecided interval, nothing unmeasured)."""


class Decision(msgspec.Struct, frozen=True, omit_defaults=True):
    feature: str
    trial: TrialRecord
    """The trial the decision reads, summary included (the report's plots come from it)."""
    requirements: Requirements
    """The feature's `requirements:` block (all unset: none declared)."""
    current_road: str
    roads: dict[str, str | None]
    """Arm -> the road it runs under the current policy (None: unknown to it)."""
    checks: list[Check]
    rules: list[RuleOutcome]
    roi: list[RoadRoi]
    break_even: list[BreakEven]
    recommendation: Recommendation
    path: list[StageView]
    policy_hash: str
    computed_at: float
