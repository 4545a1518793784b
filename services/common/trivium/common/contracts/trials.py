"""Trials on the wire: case results and summaries, as the runner posts and the gateway serves them.

A trial sends every case of one dataset version through the gateway's real invoke path once per
arm (a road or a variant of one feature), scores each answer against the case's `expected`, and
summarises each arm with the same KPIs. The runner (`trivium.trials`) computes scores and
summaries; the gateway (`/v1/trials`) stores and serves them without interpreting them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = (
    "TRIAL_ID_PATTERN",
    "ArmSummary",
    "CaseResult",
    "CaseScores",
    "Comparison",
    "Estimate",
    "LatencySummary",
    "TrialCasesPage",
    "TrialCreate",
    "TrialRecord",
    "TrialSummary",
)

TRIAL_ID_PATTERN = r"^trl_[a-z0-9]{12}$"
ARM_PATTERN = r"^[a-z0-9][a-z0-9+_-]{0,62}$"
FEATURE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""A feature's name, as the routing policy allows it."""
TrialId = Annotated[str, msgspec.Meta(pattern=TRIAL_ID_PATTERN)]
ArmName = Annotated[str, msgspec.Meta(pattern=ARM_PATTERN)]
TrialStatus = Literal["running", "interrupted", "finished"]


class CaseScores(msgspec.Struct, frozen=True, omit_defaults=True):
    """Per-case scores; a member is None when the case's `expected` does not allow it."""

    correct: bool | None = None
    """label: the predicted label equals the expected one."""
    expected_label: str | None = None
    """label: the case's expected label (the confusion matrix and macro-F1 need both sides)."""
    predicted_label: str | None = None
    out_of_labels: bool | None = None
    """label: the answer is none of the dataset's labels (a hallucinated class)."""
    exact_match: bool | None = None
    token_f1: float | None = None
    recall_at_k: float | None = None
    reciprocal_rank: float | None = None
    ungrounded: bool | None = None
    """RAG roads: groundedness below the feature's threshold."""
    judge_faithfulness: float | None = None
    judge_correctness: float | None = None


class CaseResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """One case on one arm, as the gateway answered it (or failed to)."""

    case_id: str
    arm: ArmName
    ok: bool
    """False: the gateway answered an error (`error` says which); no scores then."""
    status: int
    output: str | None = None
    route: str | None = None
    """The road that answered (differs from the arm's when it fell back)."""
    variant: str | None = None
    citations: list[str] = []
    """The cited documents' ids, in citation order."""
    timings_ms: dict[str, float] = {}
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    fallback: str | None = None
    """The fallback reason, when the arm's own road failed."""
    groundedness: float | None = None
    error: str | None = None
    """The problem's `code` when not ok."""
    answer_id: str | None = None
    scores: CaseScores = CaseScores()
    judge_cost_usd: float | None = None
    """What the LLM judge's call cost (None: not judged); never part of `cost_usd`."""
    judge_error: str | None = None
    """Judged without scores: `unparseable` (the judge's answer is not the strict format)
    or the judge call's problem code."""


class Estimate(msgspec.Struct, frozen=True):
    """A rate or mean with its 95% bootstrap interval over the cases it counts."""

    value: float
    low: float
    high: float
    n: int


class LatencySummary(msgspec.Struct, frozen=True):
    p50: float
    p95: float
    p99: float
    mean: float


class ArmSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    """The same KPIs for every arm; quality members are None when the dataset cannot say."""

    arm: str
    cases: int
    errors: Estimate
    fallbacks: Estimate
    latency_ms: dict[str, LatencySummary]
    """`total` and each stage the arm ran (`retrieve`, `rerank`, `render`, `generate`, ...)."""
    prompt_tokens_mean: float
    completion_tokens_mean: float
    cost_per_1k_requests_usd: Estimate
    accuracy: Estimate | None = None
    macro_f1: float | None = None
    confusion: dict[str, dict[str, int]] | None = None
    """expected label -> predicted label (or `(other)`) -> count."""
    out_of_labels: Estimate | None = None
    exact_match: Estimate | None = None
    token_f1: Estimate | None = None
    recall_at_k: Estimate | None = None
    mrr: Estimate | None = None
    ungrounded: Estimate | None = None
    judge_faithfulness: Estimate | None = None
    judge_correctness: Estimate | None = None
    judge_cost_usd: float | None = None
    """The LLM judge's calls on this arm's cases, summed; apart from the arm's own cost."""
    judge_unscored: int | None = None
    """Cases the judge was asked about that got no scores (an unparseable answer or an error)."""
    training_cost_usd: float | None = None
    """Fine-tune arms: the adapter's recorded training time times the policy's GPU-hour price."""
    online: dict[str, Estimate] | None = None
    """Production feedback rates for this arm (completion, satisfaction, ...), when known."""


class Comparison(msgspec.Struct, frozen=True):
    """Arm `b` against arm `a` on one metric, paired on the cases both answered."""

    metric: str
    a: str
    b: str
    n: int
    difference: float
    """b minus a."""
    low: float
    high: float
    p_value: float
    test: Literal["mcnemar-exact", "paired-bootstrap"]
    significant: bool
    verdict: str
    """In words: "rag beats prompt on accuracy (+0.12, p=0.003)", or no significant difference."""


class TrialSummary(msgspec.Struct, frozen=True):
    arms: list[ArmSummary]
    comparisons: list[Comparison]
    computed_at: float


class TrialCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    feature: Annotated[str, msgspec.Meta(pattern=FEATURE_PATTERN)]
    dataset: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    """Resolved: `name@version`, so a resumed trial reads the same rows."""
    arms: Annotated[list[ArmName], msgspec.Meta(min_length=1, max_length=16)]
    """Distinct names."""
    cases: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
    policy_hash: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class TrialRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    id: TrialId
    feature: str
    dataset: str
    arms: list[str]
    cases: int
    status: TrialStatus
    created_at: float
    created_by: str
    done: dict[str, int]
    """Per arm: cases with a stored result."""
    updated_at: float
    policy_hash: str | None = None
    note: str | None = None
    summary: TrialSummary | None = None


class TrialCasesPage(msgspec.Struct, frozen=True):
    trial: str
    arm: str
    total: int
    offset: int
    cases: list[CaseResult]
    next_offset: int | None
