"""Each arm's KPIs from its scored case results, and every pair of arms compared on the same cases.

How cases count (so the numbers mean the same thing in every report):
- Errors (`ok` false) are their own rate, over every case sent. Quality (accuracy, macro-F1,
  the confusion matrix, exact match, token F1, recall@k, MRR), hallucination (out of the label
  set, ungrounded), judge scores and latency are over the cases the arm *answered*; each
  Estimate's `n` says how many. Reliability and quality are different levers (capacity and
  timeouts versus the road itself), so they are not mixed into one number: read accuracy next
  to the error rate. A withheld answer (ok, no output) is answered, and scored as empty.
- Fallbacks, tokens and cost are over every case sent: cost per 1,000 requests is what 1,000
  requests of this arm cost, failed ones included at whatever they recorded (usually nothing).
- The LLM judge (optional) scores answered cases; its cost is summed apart from the arm's, and
  cases it gave no scores (an unparseable answer, a failed call) are counted.
- Every rate and mean carries a 95% percentile-bootstrap interval (2,000 resamples, seed 0).
- Comparisons pair the cases both arms answered: an exact McNemar test for the yes/no scores
  (accuracy, exact match, out-of-label and ungrounded answers), a paired bootstrap for the rest
  (token F1, recall@k, MRR, total latency, cost). "B beats A" is said only when the p-value is
  below alpha and the 95% interval of the difference excludes 0.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from trivium.common.contracts.trials import (
    ArmSummary,
    CaseResult,
    Comparison,
    Estimate,
    LatencySummary,
    TrialSummary,
)
from trivium.trials.statistics import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    percentiles,
)

__all__ = (
    "OTHER_LABEL",
    "compare_arms",
    "confusion_matrix",
    "macro_f1",
    "summarise_arm",
    "summarise_trial",
)

OTHER_LABEL = "(other)"
"""The confusion matrix's column for answers that name none of the dataset's labels."""
TOTAL_STAGE = "total"
SEED = 0

Reader = Callable[[CaseResult], float | None]


def _values(answered: Sequence[CaseResult], read: Reader) -> list[float]:
    return [float(v) for v in map(read, answered) if v is not None]


def _estimate(answered: Sequence[CaseResult], read: Reader) -> Estimate | None:
    values = _values(answered, read)
    return bootstrap_interval(values, seed=SEED) if values else None


def _latency(answered: Sequence[CaseResult]) -> dict[str, LatencySummary]:
    """`total` and each stage some answer spent time in (a stage a road skips reads 0)."""
    stages = {s for r in answered for s, ms in r.timings_ms.items() if ms > 0 or s == TOTAL_STAGE}
    summary = {}
    for stage in sorted(stages):
        values = [r.timings_ms.get(stage, 0.0) for r in answered]
        p50, p95, p99 = percentiles(values, (50, 95, 99))
        summary[stage] = LatencySummary(p50=p50, p95=p95, p99=p99, mean=sum(values) / len(values))
    return summary


def confusion_matrix(
    expected: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
) -> dict[str, dict[str, int]]:
    """expected -> predicted -> count: a row per label, a column per label plus `(other)`."""
    columns = [*dict.fromkeys(labels), OTHER_LABEL]
    matrix = {row: dict.fromkeys(columns, 0) for row in dict.fromkeys([*labels, *expected])}
    known = set(labels)
    for truth, guess in zip(expected, predicted, strict=True):
        matrix[truth][guess if guess is not None and guess in known else OTHER_LABEL] += 1
    return matrix


def macro_f1(
    expected: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
) -> float:
    """The mean of each label's F1 over the label set; an out-of-set answer misses its label.

    A label's F1 is 2·TP / (cases expecting it + answers naming it), 0 without a true positive.
    A label that no case expects and no answer names is left out of the mean (nothing measures
    it); with no label measured at all the result is 0.
    """
    scores = []
    for label in dict.fromkeys(labels):
        pairs = list(zip(expected, predicted, strict=True))
        true_positives = sum(t == label and p == label for t, p in pairs)
        support = sum(t == label for t, _ in pairs)
        named = sum(p == label for _, p in pairs)
        if support + named:
            scores.append(2 * true_positives / (support + named))
    return sum(scores) / len(scores) if scores else 0.0


def summarise_arm(
    arm: str, results: Sequence[CaseResult], *, labels: Sequence[str], expects: Sequence[str]
) -> ArmSummary:
    """One arm's KPIs from its case results as `score_case` scored them (see the module doc).

    A quality member is None when `expects` does not name what it needs, or when no answered
    case carries it (every case failed, or no RAG answer to judge groundedness on).
    """
    if not results:
        raise ValueError(f"arm {arm!r} has no case results")
    answered = [r for r in results if r.ok]
    sent = len(results)
    label, answer, docs = ("label" in expects), ("answer" in expects), ("doc_ids" in expects)
    classified = [r for r in answered if r.scores.expected_label is not None] if label else []
    truths = [r.scores.expected_label or "" for r in classified]
    judged = [r for r in results if r.judge_cost_usd is not None or r.judge_error is not None]
    guesses = [r.scores.predicted_label for r in classified]
    return ArmSummary(
        arm=arm,
        cases=sent,
        errors=bootstrap_interval([not r.ok for r in results], seed=SEED),
        fallbacks=bootstrap_interval([r.fallback is not None for r in results], seed=SEED),
        latency_ms=_latency(answered),
        prompt_tokens_mean=sum(r.prompt_tokens for r in results) / sent,
        completion_tokens_mean=sum(r.completion_tokens for r in results) / sent,
        cost_per_1k_requests_usd=bootstrap_interval([_cost_per_1k(r) for r in results], seed=SEED),
        accuracy=_estimate(classified, lambda r: r.scores.correct),
        macro_f1=macro_f1(truths, guesses, labels) if classified else None,
        confusion=confusion_matrix(truths, guesses, labels) if label else None,
        out_of_labels=_estimate(classified, lambda r: r.scores.out_of_labels),
        exact_match=_estimate(answered, lambda r: r.scores.exact_match) if answer else None,
        token_f1=_estimate(answered, lambda r: r.scores.token_f1) if answer else None,
        recall_at_k=_estimate(answered, lambda r: r.scores.recall_at_k) if docs else None,
        mrr=_estimate(answered, lambda r: r.scores.reciprocal_rank) if docs else None,
        ungrounded=_estimate(answered, lambda r: r.scores.ungrounded),
        judge_faithfulness=_estimate(answered, lambda r: r.scores.judge_faithfulness),
        judge_correctness=_estimate(answered, lambda r: r.scores.judge_correctness),
        judge_cost_usd=sum(r.judge_cost_usd or 0.0 for r in judged) if judged else None,
        judge_unscored=sum(r.judge_error is not None for r in judged) if judged else None,
    )


@dataclass(frozen=True)
class _Metric:
    key: str
    """The ArmSummary member it compares."""
    words: str
    read: Reader
    yes_no: bool
    """Scored right/wrong per case: McNemar. Otherwise a number per case: paired bootstrap."""
    higher_is_better: bool
    unit: str = ""


def _cost_per_1k(r: CaseResult) -> float:
    return r.cost_usd * 1000


_METRICS: dict[str, tuple[_Metric, ...]] = {
    "label": (
        _Metric("accuracy", "accuracy", lambda r: r.scores.correct, True, True),
        _Metric(
            "out_of_labels", "out-of-label answers", lambda r: r.scores.out_of_labels, True, False
        ),
    ),
    "answer": (
        _Metric("exact_match", "exact match", lambda r: r.scores.exact_match, True, True),
        _Metric("token_f1", "token F1", lambda r: r.scores.token_f1, False, True),
    ),
    "doc_ids": (
        _Metric("recall_at_k", "recall@k", lambda r: r.scores.recall_at_k, False, True),
        _Metric("mrr", "MRR", lambda r: r.scores.reciprocal_rank, False, True),
    ),
    "always": (
        _Metric("ungrounded", "ungrounded answers", lambda r: r.scores.ungrounded, True, False),
        _Metric(
            "latency_ms", "latency", lambda r: r.timings_ms.get(TOTAL_STAGE), False, False, " ms"
        ),
        _Metric(
            "cost_per_1k_requests_usd", "cost per 1k requests", _cost_per_1k, False, False, " USD"
        ),
    ),
}


def _number(value: float, metric: _Metric) -> str:
    digits = {" ms": 1, " USD": 4}.get(metric.unit, 3)
    return f"{value:+.{digits}f}"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _verdict(metric: _Metric, a: str, b: str, found: tuple[float, float, float, float]) -> str:
    difference, low, high, p = found
    test = "McNemar" if metric.yes_no else "paired bootstrap"
    if (difference > 0) == metric.higher_is_better:
        winner, loser, sign = b, a, 1.0
    else:
        winner, loser, sign = a, b, -1.0
    ends = sorted((sign * low, sign * high))
    return (
        f"{winner} beats {loser} on {metric.words} ({_number(sign * difference, metric)}"
        f"{metric.unit}, 95% CI {_number(ends[0], metric)}..{_number(ends[1], metric)}, "
        f"{test} {_p(p)})"
    )


def _compare(
    metric: _Metric, a: str, b: str, pairs: Sequence[tuple[float, float]], alpha: float
) -> Comparison:
    first, second = [x for x, _ in pairs], [y for _, y in pairs]
    difference, low, high, p = paired_bootstrap(first, second, seed=SEED)
    if metric.yes_no:
        b_only = sum(y > x for x, y in pairs)
        a_only = sum(x > y for x, y in pairs)
        p = mcnemar_exact(b_only, a_only)
    significant = p < alpha and (low > 0 or high < 0)
    verdict = (
        _verdict(metric, a, b, (difference, low, high, p))
        if significant
        else f"no significant difference in {metric.words} between {a} and {b} ({_p(p)})"
    )
    return Comparison(
        metric=metric.key,
        a=a,
        b=b,
        n=len(pairs),
        difference=difference,
        low=low,
        high=high,
        p_value=p,
        test="mcnemar-exact" if metric.yes_no else "paired-bootstrap",
        significant=significant,
        verdict=verdict,
    )


def _paired(
    a: Mapping[str, CaseResult], b: Mapping[str, CaseResult], read: Reader
) -> list[tuple[float, float]]:
    """The metric on both arms for each case both answered (and both carry it), by case id."""
    pairs = []
    for case_id in sorted(a.keys() & b.keys()):
        x, y = read(a[case_id]), read(b[case_id])
        if a[case_id].ok and b[case_id].ok and x is not None and y is not None:
            pairs.append((float(x), float(y)))
    return pairs


def compare_arms(
    results_by_arm: Mapping[str, Sequence[CaseResult]],
    /,
    *,
    expects: Sequence[str],
    alpha: float = 0.05,
) -> list[Comparison]:
    """Every pair of arms (a before b, in the mapping's order) on every metric the data allow.

    A metric no case lets both arms score (no RAG answer on one side for `ungrounded`, every
    case failed on one side) is left out rather than reported on nothing.
    """
    metrics = [m for group in (*expects, "always") for m in _METRICS.get(group, ())]
    by_case = {arm: {r.case_id: r for r in rs} for arm, rs in results_by_arm.items()}
    comparisons = []
    for a, b in itertools.combinations(by_case, 2):
        for metric in metrics:
            pairs = _paired(by_case[a], by_case[b], metric.read)
            if pairs:
                comparisons.append(_compare(metric, a, b, pairs, alpha))
    return comparisons


def summarise_trial(
    results_by_arm: Mapping[str, Sequence[CaseResult]],
    *,
    labels: Sequence[str],
    expects: Sequence[str],
    training_costs: Mapping[str, float] | None = None,
    computed_at: float | None = None,
) -> TrialSummary:
    """Every arm's summary (with its one-off training cost when known) and every comparison."""
    costs = training_costs or {}
    arms = []
    for arm, results in results_by_arm.items():
        summary = summarise_arm(arm, results, labels=labels, expects=expects)
        if arm in costs:
            summary = msgspec.structs.replace(summary, training_cost_usd=costs[arm])
        arms.append(summary)
    return TrialSummary(
        arms=arms,
        comparisons=compare_arms(results_by_arm, expects=expects),
        computed_at=time.time() if computed_at is None else computed_at,
    )
