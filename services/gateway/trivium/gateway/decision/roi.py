"""The return on each road at the declared volume: monthly cost, the fine-tune's one-off
cost, when an adapter's cheaper requests repay its training, and the latency headroom."""

from __future__ import annotations

from collections.abc import Sequence

from trivium.common.contracts.decision import BreakEven, Requirements, RoadRoi
from trivium.common.contracts.trials import ArmSummary

__all__ = ("break_even", "break_evens", "monthly_cost", "road_roi")


def monthly_cost(cost_per_1k_usd: float, monthly_requests: int) -> float:
    return cost_per_1k_usd * monthly_requests / 1000


def road_roi(arm: ArmSummary, road: str | None, needs: Requirements) -> RoadRoi:
    cost = arm.cost_per_1k_requests_usd.value
    total = arm.latency_ms.get("total")
    p95 = None if total is None else total.p95
    slo = needs.p95_latency_ms
    volume = needs.monthly_requests
    return RoadRoi(
        arm=arm.arm,
        road=road,
        cost_per_1k_usd=cost,
        monthly_cost_usd=None if volume is None else monthly_cost(cost, volume),
        one_off_usd=arm.training_cost_usd,
        p95_ms=p95,
        latency_headroom_ms=None if slo is None or p95 is None else slo - p95,
    )


def break_even(
    adapter: ArmSummary, versus: ArmSummary, training_cost_usd: float, monthly_requests: int | None
) -> BreakEven:
    """Requests after which `adapter`'s saving per request has paid `training_cost_usd`."""
    saving_per_1k = versus.cost_per_1k_requests_usd.value - adapter.cost_per_1k_requests_usd.value
    if saving_per_1k <= 0:
        return BreakEven(adapter.arm, versus.arm, training_cost_usd, saving_per_1k)
    requests = training_cost_usd / (saving_per_1k / 1000)
    months = None if not monthly_requests else requests / monthly_requests
    return BreakEven(adapter.arm, versus.arm, training_cost_usd, saving_per_1k, requests, months)


def break_evens(arms: Sequence[ArmSummary], monthly_requests: int | None) -> list[BreakEven]:
    """Each arm with a recorded training cost against each arm without one."""
    trained = [arm for arm in arms if arm.training_cost_usd is not None]
    untrained = [arm for arm in arms if arm.training_cost_usd is None]
    return [
        break_even(adapter, other, adapter.training_cost_usd or 0.0, monthly_requests)
        for adapter in trained
        for other in untrained
    ]
