"""`trivium.trials.online`: which window of `GET /v1/stats?feature=` an arm's online rates come
from, and what each rate counts. (End to end, with real feedback: tests/e2e/test_trials.py.)"""

from __future__ import annotations

from typing import Any

import msgspec

from trivium.common.contracts.trials import ArmSummary, Estimate, TrialSummary
from trivium.trials.arms import ArmSpec
from trivium.trials.online import FeatureStats, online_rates, with_online_rates


def window(count: int, errors: int = 0, **rates: tuple[float | None, int]) -> dict[str, Any]:
    """A window as the gateway writes it: correction and escalation are rates of the answers
    served (0.0 when none was reported), completion and satisfaction None when unreported."""
    served = count - errors
    unreported: dict[str, tuple[float | None, int]] = {
        "completion": (None, 0),
        "satisfaction": (None, 0),
        "correction": (0.0 if served else None, 0),
        "escalation": (0.0 if served else None, 0),
    }
    feedback = {
        kind: {"rate": rate, "count": n} for kind, (rate, n) in (unreported | rates).items()
    }
    return {"count": count, "errors": errors, "latency_ms": {}, "feedback": feedback}


def stats(features: dict[str, Any]) -> FeatureStats:
    body = {"window_s": 3600, "generated_at": "2026-01-01T00:00:00Z", "features": features}
    return msgspec.json.decode(msgspec.json.encode(body), type=FeatureStats)


PROMPT = ArmSpec("prompt", "prompt", None)
RAG = ArmSpec("rag", "rag", 0.5)
CHALLENGER = ArmSpec("challenger", "prompt", None)


def test_a_variant_arm_reads_its_variant_and_each_rate_counts_what_it_should() -> None:
    variant = window(11, 1, completion=(0.75, 8), satisfaction=(0.5, 4), correction=(0.2, 2))
    found = stats(
        {"faq": {"prompt": {**window(30), "variants": {"challenger": variant, "control": {}}}}}
    )
    rates = online_rates(found, "faq", CHALLENGER)
    assert rates is not None
    assert {kind: (e.value, e.n) for kind, e in rates.items()} == {
        "completion": (0.75, 8),
        "satisfaction": (0.5, 4),
        "correction": (0.2, 10),  # of the 10 answers served (11 requests, 1 error)
        "escalation": (0.0, 10),
    }
    assert rates["completion"].low < 0.75 < rates["completion"].high


def test_a_road_arm_reads_its_road_only_when_no_variant_ran_there() -> None:
    alone = stats({"faq": {"prompt": {**window(4, completion=(0.5, 2)), "variants": {}}}})
    assert online_rates(alone, "faq", PROMPT) == {
        "completion": Estimate(0.5, 0.0, 1.0, 2),
        "correction": Estimate(0.0, 0.0, 0.0, 4),
        "escalation": Estimate(0.0, 0.0, 0.0, 4),
    }
    mixed = stats(
        {"faq": {"prompt": {**window(4, completion=(0.5, 2)), "variants": {"a": window(4)}}}}
    )
    assert online_rates(mixed, "faq", PROMPT) is None  # the road's totals mix the variants


def test_no_feedback_no_online_rates() -> None:
    served = stats({"faq": {"rag": {**window(9), "variants": {}}}})
    assert online_rates(served, "faq", RAG) is None
    assert online_rates(served, "faq", PROMPT) is None  # the road never ran
    assert online_rates(served, "other", RAG) is None
    assert online_rates(stats({}), "faq", CHALLENGER) is None


def test_the_summary_gets_them_per_arm() -> None:
    base = Estimate(0.0, 0.0, 0.0, 1)
    arms = [ArmSummary(arm, 1, base, base, {}, 0.0, 0.0, base) for arm in ("prompt", "challenger")]
    found = stats(
        {
            "faq": {
                "prompt": {**window(2), "variants": {"challenger": window(2, completion=(1.0, 2))}}
            }
        }
    )
    summary = with_online_rates(TrialSummary(arms, [], 1.0), found, "faq", [PROMPT, CHALLENGER])
    assert summary.arms[0].online is None
    assert summary.arms[1].online == {
        "completion": Estimate(1.0, 1.0, 1.0, 2),
        "correction": Estimate(0.0, 0.0, 0.0, 2),
        "escalation": Estimate(0.0, 0.0, 0.0, 2),
    }
