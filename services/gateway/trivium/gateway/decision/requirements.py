"""Each arm against each measured requirement, by its 95% interval.

A ceiling (latency, cost, hallucination) is met when the interval's top is at or under it and
missed when its bottom is over it; a floor (quality) the other way round. An interval across
the threshold is `undecided`: more cases would tell. A measure with no interval (a latency
percentile, macro-F1) is judged on its value.
"""

from __future__ import annotations

from collections.abc import Sequence

from trivium.common.contracts.decision import Check, Requirements, Verdict
from trivium.common.contracts.trials import ArmSummary, Estimate

__all__ = (
    "VERDICT_RANK",
    "at_least",
    "at_most",
    "check_arm",
    "hallucination",
    "overall",
    "road_misses",
)

VERDICT_RANK: dict[Verdict, int] = {"meets": 0, "undecided": 1, "unmeasured": 1, "misses": 2}


def at_most(low: float, high: float, threshold: float) -> Verdict:
    if high <= threshold:
        return "meets"
    if low > threshold:
        return "misses"
    return "undecided"


def at_least(low: float, high: float, threshold: float) -> Verdict:
    if low >= threshold:
        return "meets"
    if high < threshold:
        return "misses"
    return "undecided"


def _ceiling(
    arm: str, requirement: str, threshold: float, value: Estimate | None, metric: str | None = None
) -> Check:
    if value is None:
        return Check(arm, requirement, threshold, "unmeasured", metric=metric)
    verdict = at_most(value.low, value.high, threshold)
    return Check(arm, requirement, threshold, verdict, value.value, value.low, value.high, metric)


def _quality(arm: ArmSummary, metric: str) -> Estimate | None:
    value = getattr(arm, metric)
    if isinstance(value, float):  # macro-F1: a point, no interval
        return Estimate(value, value, value, arm.cases)
    return value if isinstance(value, Estimate) else None


def hallucination(arm: ArmSummary) -> tuple[str, Estimate | None]:
    """Ungrounded answers where the road is grounded, else labels outside the set."""
    if arm.ungrounded is not None:
        return "ungrounded", arm.ungrounded
    return "out_of_labels", arm.out_of_labels


def check_arm(arm: ArmSummary, needs: Requirements) -> list[Check]:
    """The arm against every measured requirement `needs` declares, in the file's order."""
    checks: list[Check] = []
    if needs.p95_latency_ms is not None:
        total = arm.latency_ms.get("total")
        if total is None:
            checks.append(Check(arm.arm, "p95_latency_ms", needs.p95_latency_ms, "unmeasured"))
        else:
            verdict = at_most(total.p95, total.p95, needs.p95_latency_ms)
            checks.append(
                Check(arm.arm, "p95_latency_ms", needs.p95_latency_ms, verdict, total.p95)
            )
    if needs.max_cost_per_1k_usd is not None:
        checks.append(
            _ceiling(
                arm.arm,
                "max_cost_per_1k_usd",
                needs.max_cost_per_1k_usd,
                arm.cost_per_1k_requests_usd,
            )
        )
    if needs.min_quality is not None:
        metric, threshold = needs.min_quality.metric, needs.min_quality.threshold
        value = _quality(arm, metric)
        if value is None:
            checks.append(Check(arm.arm, "min_quality", threshold, "unmeasured", metric=metric))
        else:
            verdict = at_least(value.low, value.high, threshold)
            checks.append(
                Check(
                    arm.arm,
                    "min_quality",
                    threshold,
                    verdict,
                    value.value,
                    value.low,
                    value.high,
                    metric,
                )
            )
    if needs.max_hallucination_rate is not None:
        measure, rate = hallucination(arm)
        checks.append(
            _ceiling(arm.arm, "max_hallucination_rate", needs.max_hallucination_rate, rate, measure)
        )
    return checks


def road_misses(road: str | None, needs: Requirements, retrieval_roads: frozenset[str]) -> set[str]:
    """The declared needs a road cannot meet by what it is: citations and verification come
    only from retrieved passages."""
    grounded = road in retrieval_roads
    misses = set()
    if needs.needs_citations and not grounded:
        misses.add("needs_citations")
    if needs.regulated and not grounded:
        misses.add("regulated")
    return misses


def overall(verdicts: Sequence[Verdict]) -> Verdict:
    """misses if any requirement is missed, else undecided if any is not known, else meets."""
    if not verdicts:
        return "meets"
    worst = max(verdicts, key=VERDICT_RANK.__getitem__)
    return "undecided" if worst == "unmeasured" else worst
