"""The framework's rules, requirement verdicts by interval, and the ROI arithmetic, each
checked by hand on small made-up arms."""

from __future__ import annotations

from typing import Any

import pytest

from trivium.common.contracts.decision import MinQuality, Requirements
from trivium.common.contracts.trials import ArmSummary, Estimate, LatencySummary
from trivium.gateway.decision.requirements import at_least, at_most, check_arm, overall
from trivium.gateway.decision.roi import break_even, break_evens, monthly_cost, road_roi
from trivium.gateway.decision.rules import (
    RULES,
    Facts,
    a_need_for_citations_requires_a_retrieval_road,
    knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval,
    regulated_features_require_a_verifier_and_the_review_hold,
    strict_format_or_labels_at_high_volume_favour_an_adapter,
    where_one_road_alone_misses_a_hybrid_may_meet,
)
from trivium.gateway.policy.model import Feature, Retrieval

ROADS: dict[str, str | None] = {"prompt": "prompt", "rag": "rag", "finetune": "finetune"}
FEATURE = Feature(
    route="prompt", upstream="u", template="t@1", adapter="a@1", retrieval=Retrieval("docs")
)


def facts(
    feature: Feature = FEATURE,
    misses: dict[str, frozenset[str]] | None = None,
    **needs: Any,
) -> Facts:
    missed = misses or {arm: frozenset() for arm in ROADS}
    return Facts("kb", feature, Requirements(**needs), ROADS, missed)


def arm(name: str, cost_per_1k: float, p95: float = 100.0, **members: object) -> ArmSummary:
    return ArmSummary(
        arm=name,
        cases=100,
        errors=Estimate(0, 0, 0, 100),
        fallbacks=Estimate(0, 0, 0, 100),
        latency_ms={"total": LatencySummary(p95 / 2, p95, p95 * 1.2, p95 / 2)},
        prompt_tokens_mean=100,
        completion_tokens_mean=5,
        cost_per_1k_requests_usd=Estimate(cost_per_1k, cost_per_1k * 0.9, cost_per_1k * 1.1, 100),
        **members,  # type: ignore[arg-type]
    )


# -- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("pace", ["weekly", "daily", "live"])
def test_knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval(pace: str) -> None:
    outcome = knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval(
        facts(knowledge_changes=pace)
    )
    assert outcome is not None
    assert outcome.favours == ["rag"]
    assert pace in outcome.finding


@pytest.mark.parametrize("pace", ["never", "monthly", None])
def test_knowledge_that_keeps_pace_with_training_favours_nothing(pace: str | None) -> None:
    rule = knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval
    assert rule(facts(knowledge_changes=pace)) is None


def test_a_need_for_citations_requires_a_retrieval_road() -> None:
    outcome = a_need_for_citations_requires_a_retrieval_road(facts(needs_citations=True))
    assert outcome is not None
    assert outcome.excludes == ["prompt", "finetune"]
    assert a_need_for_citations_requires_a_retrieval_road(facts()) is None


@pytest.mark.parametrize("output_format", ["label", "structured"])
def test_strict_format_or_labels_at_high_volume_favour_an_adapter(output_format: str) -> None:
    outcome = strict_format_or_labels_at_high_volume_favour_an_adapter(
        facts(output_format=output_format, monthly_requests=100_000)
    )
    assert outcome is not None
    assert outcome.favours == ["finetune"]


@pytest.mark.parametrize(
    "needs",
    [
        {"output_format": "label", "monthly_requests": 99_999},
        {"output_format": "label"},
        {"output_format": "free", "monthly_requests": 10_000_000},
    ],
)
def test_free_text_or_low_volume_does_not_favour_an_adapter(needs: dict[str, Any]) -> None:
    assert strict_format_or_labels_at_high_volume_favour_an_adapter(facts(**needs)) is None


def test_regulated_features_require_a_verifier_and_the_review_hold() -> None:
    outcome = regulated_features_require_a_verifier_and_the_review_hold(facts(regulated=True))
    assert outcome is not None
    assert outcome.excludes == ["prompt", "finetune"]
    assert [a.split(":")[0] for a in outcome.actions] == [
        "set retrieval.min_groundedness",
        "set retrieval.on_fail",
    ]
    verified = Feature(
        route="rag",
        upstream="u",
        template="t@1",
        retrieval=Retrieval("docs", min_groundedness=0.6, on_fail="hold"),
    )
    held = regulated_features_require_a_verifier_and_the_review_hold(
        facts(verified, regulated=True)
    )
    assert held is not None
    assert held.actions == []


def test_hybrids_where_one_road_alone_misses() -> None:
    misses = {
        "prompt": frozenset({"min_quality", "needs_citations"}),
        "rag": frozenset({"min_quality"}),
        "finetune": frozenset({"needs_citations"}),
    }
    outcome = where_one_road_alone_misses_a_hybrid_may_meet(facts(misses=misses))
    assert outcome is not None
    assert "finetune misses needs_citations, which rag meets" in outcome.finding
    assert "finetune+rag" in outcome.actions[0]


def test_no_hybrid_when_a_road_alone_meets_or_both_miss_the_same() -> None:
    one_meets = {"prompt": frozenset({"min_quality"}), "rag": frozenset(), "finetune": frozenset()}
    assert where_one_road_alone_misses_a_hybrid_may_meet(facts(misses=one_meets)) is None
    same = {arm: frozenset({"p95_latency_ms"}) for arm in ROADS}
    assert where_one_road_alone_misses_a_hybrid_may_meet(facts(misses=same)) is None


def test_each_rule_states_its_sentence_and_cites_itself() -> None:
    needs: dict[str, Any] = {
        "knowledge_changes": "live",
        "needs_citations": True,
        "output_format": "label",
        "monthly_requests": 10**6,
        "regulated": True,
    }
    misses = {"prompt": frozenset({"x"}), "rag": frozenset({"y"}), "finetune": frozenset({"z"})}
    outcomes = [rule(facts(misses=misses, **needs)) for rule in RULES]
    assert all(outcome is not None for outcome in outcomes)
    for rule, outcome in zip(RULES, outcomes, strict=True):
        assert outcome is not None
        assert outcome.citation == f"trivium.gateway.decision.rules:{rule.__name__}"
        assert outcome.text == (rule.__doc__ or "").splitlines()[0]


# -- requirement verdicts ----------------------------------------------------------------


def test_a_ceiling_is_met_by_the_whole_interval_and_undecided_across_it() -> None:
    assert at_most(0.01, 0.04, 0.05) == "meets"
    assert at_most(0.01, 0.05, 0.05) == "meets"
    assert at_most(0.04, 0.07, 0.05) == "undecided"
    assert at_most(0.06, 0.07, 0.05) == "misses"


def test_a_floor_is_met_by_the_whole_interval_and_undecided_across_it() -> None:
    assert at_least(0.81, 0.9, 0.8) == "meets"
    assert at_least(0.75, 0.9, 0.8) == "undecided"
    assert at_least(0.6, 0.79, 0.8) == "misses"


def test_an_arm_is_checked_against_each_declared_requirement() -> None:
    needs = Requirements(
        p95_latency_ms=300,
        max_cost_per_1k_usd=0.05,
        min_quality=MinQuality("accuracy", 0.8),
        max_hallucination_rate=0.05,
    )
    summary = arm(
        "rag",
        0.05,  # interval [0.045, 0.055] straddles 0.05
        p95=320,
        accuracy=Estimate(0.9, 0.85, 0.95, 100),
        ungrounded=Estimate(0.02, 0.0, 0.04, 100),
        out_of_labels=Estimate(0.5, 0.4, 0.6, 100),  # ungrounded wins on a grounded road
    )
    checks = {c.requirement: c for c in check_arm(summary, needs)}
    assert {k: c.verdict for k, c in checks.items()} == {
        "p95_latency_ms": "misses",
        "max_cost_per_1k_usd": "undecided",
        "min_quality": "meets",
        "max_hallucination_rate": "meets",
    }
    assert checks["max_hallucination_rate"].metric == "ungrounded"
    assert checks["p95_latency_ms"].measured == 320
    assert checks["p95_latency_ms"].low is None


def test_a_metric_the_trial_did_not_measure_is_unmeasured() -> None:
    needs = Requirements(min_quality=MinQuality("recall_at_k", 0.5))
    [check] = check_arm(arm("prompt", 0.01), needs)
    assert check.verdict == "unmeasured"
    assert check.metric == "recall_at_k"
    assert overall(["meets", "unmeasured"]) == "undecided"
    assert overall(["meets", "undecided", "misses"]) == "misses"
    assert overall([]) == "meets"


def test_macro_f1_is_judged_on_its_value() -> None:
    needs = Requirements(min_quality=MinQuality("macro_f1", 0.7))
    [check] = check_arm(arm("finetune", 0.01, macro_f1=0.72), needs)
    assert (check.verdict, check.low, check.high) == ("meets", 0.72, 0.72)


# -- ROI, by hand ------------------------------------------------------------------------


def test_monthly_cost_is_the_cost_per_1k_times_the_volume_in_thousands() -> None:
    assert monthly_cost(0.25, 2_000_000) == pytest.approx(500.0)


def test_the_adapter_breaks_even_when_its_saving_has_paid_its_training() -> None:
    # $0.07 vs $0.01 per 1k: $0.00006 saved a request; $3 of training / $0.00006 = 50,000
    adapter = arm("finetune", 0.01, training_cost_usd=3.0)
    prompt = arm("prompt", 0.07)
    even = break_even(adapter, prompt, 3.0, 200_000)
    assert even.saving_per_1k_usd == pytest.approx(0.06)
    assert even.break_even_requests == pytest.approx(50_000)
    assert even.months_at_declared_volume == pytest.approx(0.25)


def test_an_adapter_that_costs_more_per_request_never_breaks_even() -> None:
    adapter = arm("finetune", 0.09, training_cost_usd=3.0)
    even = break_even(adapter, arm("prompt", 0.07), 3.0, 200_000)
    assert even.break_even_requests is None
    assert even.months_at_declared_volume is None
    pairs = break_evens([adapter, arm("prompt", 0.07), arm("rag", 0.2)], None)
    assert [(b.adapter, b.versus) for b in pairs] == [("finetune", "prompt"), ("finetune", "rag")]


def test_latency_headroom_is_the_slo_minus_the_p95() -> None:
    needs = Requirements(p95_latency_ms=400, monthly_requests=10_000)
    roi = road_roi(arm("finetune", 0.5, p95=250, training_cost_usd=2.0), "finetune", needs)
    assert roi.latency_headroom_ms == pytest.approx(150)
    assert roi.monthly_cost_usd == pytest.approx(5.0)
    assert roi.one_off_usd == 2.0
    over = road_roi(arm("rag", 0.5, p95=450), "rag", needs)
    assert over.latency_headroom_ms == pytest.approx(-50)
