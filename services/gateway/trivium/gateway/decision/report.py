"""The decision for one feature from one finished trial: checks, rules, ROI, recommendation,
and the staged path. Pure: the route reads the trial and the policy and calls `build_decision`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from trivium.common.contracts.decision import (
    STAGES,
    Decision,
    Recommendation,
    Requirements,
    RoadRoi,
    RuleOutcome,
    StageView,
    Verdict,
)
from trivium.common.contracts.trials import ArmSummary, TrialRecord
from trivium.common.errors import ConflictError
from trivium.gateway.decision.requirements import VERDICT_RANK, check_arm, overall, road_misses
from trivium.gateway.decision.roads import RETRIEVAL_ROADS, STAGE_OF, arm_roads
from trivium.gateway.decision.roi import break_evens, road_roi
from trivium.gateway.decision.rules import (
    HYBRID_ROAD,
    Facts,
    apply_rules,
    where_one_road_alone_misses_a_hybrid_may_meet,
)
from trivium.gateway.policy.model import Feature

__all__ = ("TrialNotDecidableError", "build_decision")


class TrialNotDecidableError(ConflictError):
    code = "trial_not_decidable"


def build_decision(
    name: str, feature: Feature, record: TrialRecord, policy_hash: str, now: float | None = None
) -> Decision:
    """Raises `TrialNotDecidableError` (field `trial`) for a trial of another feature or one
    without a summary."""
    if record.feature != name:
        raise TrialNotDecidableError(
            f"trial {record.id} is of feature {record.feature!r}, not {name!r}", field="trial"
        )
    if record.summary is None:
        raise TrialNotDecidableError(
            f"trial {record.id} is {record.status} and has no summary yet", field="trial"
        )
    arms = record.summary.arms
    needs = feature.requirements or Requirements()
    roads = arm_roads(feature, [arm.arm for arm in arms])
    checks = {arm.arm: check_arm(arm, needs) for arm in arms}
    misses = {
        arm: frozenset(c.requirement for c in arm_checks if c.verdict == "misses")
        | road_misses(roads[arm], needs, RETRIEVAL_ROADS)
        for arm, arm_checks in checks.items()
    }
    rules = apply_rules(Facts(name, feature, needs, roads, misses))
    verdicts = {arm: overall([c.verdict for c in arm_checks]) for arm, arm_checks in checks.items()}
    roi = [road_roi(arm, roads[arm.arm], needs) for arm in arms]
    quality = {
        c.arm: c.measured or 0.0
        for arm_checks in checks.values()
        for c in arm_checks
        if c.requirement == "min_quality"
    }
    recommendation = _recommend(arms, roads, verdicts, misses, rules, roi, quality, needs)
    return Decision(
        feature=name,
        trial=record,
        requirements=needs,
        current_road=feature.route,
        roads=roads,
        checks=[c for arm_checks in checks.values() for c in arm_checks],
        rules=rules,
        roi=roi,
        break_even=break_evens(arms, needs.monthly_requests),
        recommendation=recommendation,
        path=_path(feature.route, roads, verdicts, misses, recommendation),
        policy_hash=policy_hash,
        computed_at=time.time() if now is None else now,
    )


def _standing(verdict: Verdict, missed: frozenset[str]) -> Verdict:
    """An arm's verdict over every requirement, its road's included."""
    return "misses" if missed else verdict


def _recommend(
    arms: Sequence[ArmSummary],
    roads: Mapping[str, str | None],
    verdicts: Mapping[str, Verdict],
    misses: Mapping[str, frozenset[str]],
    rules: Sequence[RuleOutcome],
    roi: Sequence[RoadRoi],
    quality: Mapping[str, float],
    needs: Requirements,
) -> Recommendation:
    """The arm that meets the most (misses nothing, then nothing undecided), then the one the
    most rules favour, then the cheapest, then the best on the declared quality metric; a
    hybrid when no road alone meets and the rule says two roads together would."""
    excluded = {arm: rule.rule for rule in rules for arm in rule.excludes}
    favoured = {arm.arm: sum(arm.arm in rule.favours for rule in rules) for arm in arms}
    cost = {entry.arm: entry.cost_per_1k_usd for entry in roi}
    standing = {arm.arm: _standing(verdicts[arm.arm], misses[arm.arm]) for arm in arms}
    ranked = sorted(
        (arm.arm for arm in arms if arm.arm not in excluded and roads[arm.arm] is not None),
        key=lambda arm: (
            VERDICT_RANK[standing[arm]],
            -favoured[arm],
            cost[arm],
            -quality.get(arm, 0.0),
        ),
    )
    reasons = [f"{arm} is ruled out by {rule}" for arm, rule in excluded.items()]
    hybrid = next(
        (r for r in rules if r.rule == where_one_road_alone_misses_a_hybrid_may_meet.__name__),
        None,
    )
    if hybrid is not None:
        return Recommendation(
            arm=None,
            road=HYBRID_ROAD,
            stage="hybrid",
            reasons=[hybrid.finding, *hybrid.actions, *reasons],
            confident=False,
        )
    if not ranked:
        return Recommendation(
            arm=None,
            road=None,
            stage=None,
            reasons=[*reasons, "no arm of this trial can serve this feature as declared"],
            confident=False,
        )
    best = ranked[0]
    road = roads[best]
    reasons.insert(0, _why(best, standing[best], misses[best], favoured[best], rules))
    others = [arm for arm in ranked[1:] if standing[arm] == standing[best]]
    if others and all(cost[arm] == cost[best] for arm in others):
        metric = needs.min_quality.metric if needs.min_quality else "quality"
        reasons.append(
            f"{', '.join(others)} qualify as well at the same cost; {best} scores highest on "
            f"{metric}"
        )
    elif others:
        reasons.append(_cheaper(best, others, cost, needs))
    return Recommendation(
        arm=best,
        road=road,
        stage=STAGE_OF.get(road or ""),
        reasons=reasons,
        confident=standing[best] == "meets",
    )


def _why(
    arm: str,
    standing: Verdict,
    missed: frozenset[str],
    favoured: int,
    rules: Sequence[RuleOutcome],
) -> str:
    if standing == "meets":
        said = f"{arm} meets every requirement with its whole 95% interval"
    elif standing == "undecided":
        said = (
            f"{arm} misses no requirement, but some intervals straddle their thresholds "
            "(more cases would tell)"
        )
    else:
        missing = ", ".join(sorted(missed))
        said = f"no arm meets every requirement; {arm} comes closest, missing {missing}"
    backing = [rule.rule for rule in rules if arm in rule.favours]
    if favoured and backing:
        said += f"; favoured by {', '.join(backing)}"
    return said


def _cheaper(
    best: str, others: Sequence[str], cost: Mapping[str, float], needs: Requirements
) -> str:
    volume = needs.monthly_requests
    if volume is None:
        prices = ", ".join(f"{arm} ${cost[arm]:.4f}" for arm in others)
        return (
            f"cheapest of those that qualify as well: ${cost[best]:.4f} per 1k requests ({prices})"
        )
    prices = ", ".join(f"{arm} ${cost[arm] * volume / 1000:,.2f}" for arm in others)
    return (
        f"of those that qualify as well, cheapest at {volume:,} requests a month: "
        f"${cost[best] * volume / 1000:,.2f} ({prices})"
    )


def _path(
    current: str,
    roads: Mapping[str, str | None],
    verdicts: Mapping[str, Verdict],
    misses: Mapping[str, frozenset[str]],
    recommendation: Recommendation,
) -> list[StageView]:
    views = []
    for stage in STAGES:
        on_stage = [road for road, at in STAGE_OF.items() if at == stage]
        arms = [arm for arm, road in roads.items() if road in on_stage]
        standings = [_standing(verdicts[arm], misses[arm]) for arm in arms]
        best = _best(standings)
        views.append(
            StageView(
                stage=stage,
                roads=on_stage,
                arms=arms,
                current=STAGE_OF[current] == stage,
                recommended=recommendation.stage == stage,
                best_verdict=best,
            )
        )
    return views


def _best(standings: Sequence[Verdict]) -> Verdict | None:
    if not standings:
        return None
    return min(standings, key=VERDICT_RANK.__getitem__)
