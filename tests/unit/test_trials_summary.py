"""Arm summaries computed by hand, and comparisons that are significant only when they should be."""

from __future__ import annotations

import msgspec
import pytest

from trivium.common.contracts.datasets import Expected
from trivium.common.contracts.trials import CaseResult, CaseScores, Comparison, TrialSummary
from trivium.trials.scoring import score_case
from trivium.trials.summary import (
    OTHER_LABEL,
    compare_arms,
    confusion_matrix,
    macro_f1,
    summarise_arm,
    summarise_trial,
)

LABELS = ["billing", "shipping", "refund"]


def _case(
    case_id: str,
    arm: str,
    output: str | None,
    expected: Expected,
    *,
    ok: bool = True,
    total_ms: float = 100.0,
    **fields: object,
) -> CaseResult:
    base = CaseResult(
        case_id=case_id,
        arm=arm,
        ok=ok,
        status=200 if ok else 503,
        output=output,
        timings_ms={"total": total_ms, "generate": total_ms - 10, "retrieve": 0.0},
        error=None if ok else "upstream_unavailable",
        **fields,  # type: ignore[arg-type]
    )
    scores = score_case(expected, base, labels=LABELS, min_groundedness=0.5)
    return msgspec.structs.replace(base, scores=scores)


# (expected, answer): accuracy 3/6 over the answered; one more case failed.
TRIAGE = [
    ("billing", "billing"),
    ("billing", "Shipping."),
    ("billing", "no idea"),  # out of the label set
    ("shipping", "shipping"),
    ("shipping", "shipping: late parcel"),
    ("refund", "billing"),
]


def _triage_arm() -> list[CaseResult]:
    cases = [
        _case(f"c{i}", "prompt", out, Expected(label=truth), cost_usd=0.002, prompt_tokens=10)
        for i, (truth, out) in enumerate(TRIAGE)
    ]
    failed = _case("c6", "prompt", None, Expected(label="refund"), ok=False, fallback="timeout")
    return [*cases, failed]


def test_classification_kpis_by_hand() -> None:
    summary = summarise_arm("prompt", _triage_arm(), labels=LABELS, expects=["label"])
    assert summary.cases == 7
    assert summary.errors.value == pytest.approx(1 / 7)
    assert summary.errors.n == 7
    assert summary.fallbacks.value == pytest.approx(1 / 7)
    assert summary.accuracy is not None
    assert (summary.accuracy.value, summary.accuracy.n) == (0.5, 6)  # over the answered
    # billing: TP 1, expected 3, named 2 -> 2/5; shipping: TP 2, expected 2, named 3 -> 4/5;
    # refund: TP 0 -> 0. Macro: (0.4 + 0.8 + 0) / 3.
    assert summary.macro_f1 == pytest.approx(0.4)
    assert summary.confusion == {
        "billing": {"billing": 1, "shipping": 1, "refund": 0, OTHER_LABEL: 1},
        "shipping": {"billing": 0, "shipping": 2, "refund": 0, OTHER_LABEL: 0},
        "refund": {"billing": 1, "shipping": 0, "refund": 0, OTHER_LABEL: 0},
    }
    assert summary.out_of_labels is not None
    assert summary.out_of_labels.value == pytest.approx(1 / 6)
    # Cost and tokens are over every request sent: 6 x 0.002 + 0 over 7, per 1,000.
    assert summary.cost_per_1k_requests_usd.value == pytest.approx(12 / 7)
    assert summary.prompt_tokens_mean == pytest.approx(60 / 7)
    assert summary.exact_match is None
    assert summary.recall_at_k is None
    assert summary.ungrounded is None  # no answer carried a groundedness
    for estimate in (summary.errors, summary.accuracy, summary.cost_per_1k_requests_usd):
        assert estimate.low <= estimate.value <= estimate.high


def test_latency_per_stage_the_arm_ran() -> None:
    cases = [
        _case(f"c{i}", "prompt", "billing", Expected(label="billing"), total_ms=10.0 * (i + 1))
        for i in range(10)
    ]
    summary = summarise_arm("prompt", cases, labels=LABELS, expects=["label"])
    assert set(summary.latency_ms) == {"total", "generate"}  # retrieve was 0 everywhere
    total = summary.latency_ms["total"]
    assert (total.p50, total.p95, total.p99, total.mean) == pytest.approx((55, 95.5, 99.1, 55))
    assert summary.latency_ms["generate"].mean == pytest.approx(45)


def test_text_retrieval_groundedness_and_judge_kpis() -> None:
    expected = Expected(answer="the parcel is late", doc_ids=["d1", "d2"])
    cases = [
        _case("a", "rag", "The parcel is late.", expected, citations=["d2", "d1"],
              groundedness=0.9, scores=CaseScores(judge_faithfulness=1.0)),
        _case("b", "rag", "parcel lost", expected, citations=["d5", "d1"], groundedness=0.2),
    ]  # fmt: skip
    summary = summarise_arm("rag", cases, labels=[], expects=["answer", "doc_ids"])
    assert summary.exact_match is not None
    assert summary.exact_match.value == 0.5
    assert summary.token_f1 is not None
    assert summary.token_f1.value == pytest.approx((1.0 + 0.4) / 2)  # P 1/2, R 1/3 -> 0.4
    assert summary.recall_at_k is not None
    assert summary.recall_at_k.value == 0.75
    assert summary.mrr is not None
    assert summary.mrr.value == 0.75
    assert summary.ungrounded is not None
    assert summary.ungrounded.value == 0.5
    assert summary.judge_faithfulness is not None
    assert (summary.judge_faithfulness.value, summary.judge_faithfulness.n) == (1.0, 1)
    assert summary.accuracy is None
    assert summary.confusion is None


def test_macro_f1_leaves_out_a_label_nothing_measures() -> None:
    assert macro_f1(["a", "a"], ["a", "a"], ["a", "b"]) == 1.0
    assert macro_f1(["a", "b"], [None, None], ["a", "b"]) == 0.0
    matrix = confusion_matrix(["a", "b"], ["a", "z"], ["a", "b"])
    assert matrix["b"] == {"a": 0, "b": 0, OTHER_LABEL: 1}


def _paired_arms(pattern: list[tuple[bool, bool]]) -> dict[str, list[CaseResult]]:
    """Two arms on the same cases; each pair says whether prompt and rag got the label right."""
    arms: dict[str, list[CaseResult]] = {"prompt": [], "rag": []}
    for i, (prompt_right, rag_right) in enumerate(pattern):
        expected = Expected(label="billing")
        for arm, right in (("prompt", prompt_right), ("rag", rag_right)):
            output = "billing" if right else "shipping"
            arms[arm].append(_case(f"c{i:03}", arm, output, expected, cost_usd=0.001))
    return arms


def _accuracy(comparisons: list[Comparison]) -> Comparison:
    (found,) = [c for c in comparisons if c.metric == "accuracy"]
    return found


def test_rag_beats_prompt_when_mcnemar_says_so() -> None:
    # 10 cases only rag got right, 2 only prompt, 28 both: McNemar p = 0.0386.
    pattern = [(False, True)] * 10 + [(True, False)] * 2 + [(True, True)] * 28
    found = _accuracy(compare_arms(_paired_arms(pattern), expects=["label"]))
    assert (found.a, found.b, found.n, found.test) == ("prompt", "rag", 40, "mcnemar-exact")
    assert found.difference == pytest.approx(0.2)
    assert found.p_value == pytest.approx(0.0386, abs=5e-5)
    assert found.low > 0
    assert found.significant
    assert found.verdict.startswith("rag beats prompt on accuracy (+0.200, 95% CI +0.")
    assert found.verdict.endswith(", McNemar p=0.039)")


def test_the_same_difference_is_not_significant_at_a_stricter_alpha() -> None:
    pattern = [(False, True)] * 10 + [(True, False)] * 2 + [(True, True)] * 28
    found = _accuracy(compare_arms(_paired_arms(pattern), expects=["label"], alpha=0.01))
    assert not found.significant
    assert found.verdict == "no significant difference in accuracy between prompt and rag (p=0.039)"


def test_balanced_disagreement_is_no_difference() -> None:
    pattern = [(False, True)] * 6 + [(True, False)] * 6 + [(True, True)] * 8
    found = _accuracy(compare_arms(_paired_arms(pattern), expects=["label"]))
    assert (found.difference, found.p_value, found.significant) == (0.0, 1.0, False)
    assert found.verdict == "no significant difference in accuracy between prompt and rag (p=1)"


def test_the_first_arm_can_win_and_the_verdict_says_so() -> None:
    pattern = [(True, False)] * 15 + [(True, True)] * 5
    found = _accuracy(compare_arms(_paired_arms(pattern), expects=["label"]))
    assert found.difference == pytest.approx(-0.75)
    assert found.significant
    assert found.verdict.startswith("prompt beats rag on accuracy (+0.750, 95% CI +0.")


def test_lower_latency_wins_and_cases_pair_only_where_both_answered() -> None:
    expected = Expected(label="billing")
    prompt = [_case(f"c{i}", "prompt", "billing", expected, total_ms=50 + i % 3) for i in range(30)]
    rag = [_case(f"c{i}", "rag", "billing", expected, total_ms=80 + i % 5) for i in range(28)]
    rag += [_case(f"c{i}", "rag", None, expected, ok=False) for i in (28, 29)]
    comparisons = compare_arms({"prompt": prompt, "rag": rag}, expects=["label"])
    (latency,) = [c for c in comparisons if c.metric == "latency_ms"]
    assert latency.n == 28
    assert latency.test == "paired-bootstrap"
    assert latency.significant
    assert latency.verdict.startswith("prompt beats rag on latency (-")
    assert " ms, 95% CI -" in latency.verdict
    accuracy = _accuracy(comparisons)
    assert (accuracy.n, accuracy.difference, accuracy.significant) == (28, 0.0, False)
    # Neither arm carried a groundedness: nothing to compare on, so no comparison is invented.
    assert not [c for c in comparisons if c.metric == "ungrounded"]
    assert {c.metric for c in comparisons} == {
        "accuracy", "out_of_labels", "latency_ms", "cost_per_1k_requests_usd",
    }  # fmt: skip


def test_trial_summary_is_deterministic_and_wire_valid() -> None:
    arms = _paired_arms([(False, True)] * 10 + [(True, True)] * 10)
    args = {"labels": LABELS, "expects": ["label"], "training_costs": {"rag": 1.25}}
    summary = summarise_trial(arms, computed_at=1.0, **args)  # type: ignore[arg-type]
    assert summary == summarise_trial(arms, computed_at=1.0, **args)  # type: ignore[arg-type]
    assert [a.arm for a in summary.arms] == ["prompt", "rag"]
    assert [a.training_cost_usd for a in summary.arms] == [None, 1.25]
    assert _accuracy(summary.comparisons).significant
    wire = msgspec.json.encode(summary)
    assert msgspec.json.decode(wire, type=TrialSummary) == summary
