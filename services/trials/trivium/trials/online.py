"""Production feedback rates beside a trial's offline ones (`ArmSummary.online`).

`GET /v1/stats?feature=` carries, per road and per variant, what the calling product reported
about the answers it was served in the stats window (`POST /v1/feedback`): completion,
satisfaction, correction and escalation rates, each with its count. The structs below mirror
the members of `trivium.gateway.telemetry.stats.StatsSummary` a trial reads (trials may not
import the gateway); unknown members are ignored.

An arm is matched to exactly what served production: a variant arm to that variant on its
road; a road arm to the road's own traffic, which the window tells apart only when no variant
ran on that road (then every request of the road is the feature's own arm). An arm with no
feedback in the window gets no online rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from trivium.common.contracts.trials import ArmSummary, Estimate, TrialSummary
from trivium.trials.arms import ArmSpec
from trivium.trials.statistics import bootstrap_interval

__all__ = ("ONLINE_RATES", "FeatureStats", "online_rates", "with_online_rates")

ONLINE_RATES = ("completion", "satisfaction", "correction", "escalation")
SEED = 0


class _Rate(msgspec.Struct, frozen=True):
    rate: float | None = None
    count: int = 0


class _Feedback(msgspec.Struct, frozen=True):
    completion: _Rate = _Rate()
    satisfaction: _Rate = _Rate()
    correction: _Rate = _Rate()
    escalation: _Rate = _Rate()


class _Window(msgspec.Struct, frozen=True):
    count: int = 0
    errors: int = 0
    feedback: _Feedback | None = None


class _Road(_Window, frozen=True):
    variants: dict[str, _Window] = {}


class FeatureStats(msgspec.Struct, frozen=True):
    """The answer of `GET /v1/stats?feature=`: feature -> road -> its window."""

    features: dict[str, dict[str, _Road]] = {}


def _window(stats: FeatureStats, feature: str, arm: ArmSpec) -> _Window | None:
    road = stats.features.get(feature, {}).get(arm.road)
    if road is None:
        return None
    if arm.name != arm.road:  # a variant
        return road.variants.get(arm.name)
    return None if road.variants else road


def _estimate(rate: _Rate, of: int) -> Estimate | None:
    if rate.rate is None or of <= 0:
        return None
    hits = min(round(rate.rate * of), of)
    return bootstrap_interval([1.0] * hits + [0.0] * (of - hits), seed=SEED)


def online_rates(stats: FeatureStats, feature: str, arm: ArmSpec) -> dict[str, Estimate] | None:
    """The arm's production feedback rates, each over what it counts (`Estimate.n`):
    completion and satisfaction over the answers reported, correction and escalation over the
    answers served; None when the window holds no feedback for the arm."""
    window = _window(stats, feature, arm)
    feedback = window.feedback if window is not None else None
    if window is None or feedback is None:
        return None
    if not any(getattr(feedback, kind).count for kind in ONLINE_RATES):
        return None
    served = max(window.count - window.errors, 0)
    denominators = {
        "completion": feedback.completion.count,
        "satisfaction": feedback.satisfaction.count,
        "correction": served,
        "escalation": served,
    }
    rates = {
        kind: estimate
        for kind in ONLINE_RATES
        if (estimate := _estimate(getattr(feedback, kind), denominators[kind])) is not None
    }
    return rates or None


def with_online_rates(
    summary: TrialSummary, stats: FeatureStats, feature: str, arms: Sequence[ArmSpec]
) -> TrialSummary:
    """`summary` with `online` set on each arm production has feedback for."""
    specs = {arm.name: arm for arm in arms}

    def filled(arm: ArmSummary) -> ArmSummary:
        spec = specs.get(arm.arm)
        online = online_rates(stats, feature, spec) if spec is not None else None
        return msgspec.structs.replace(arm, online=online) if online else arm

    return msgspec.structs.replace(summary, arms=[filled(arm) for arm in summary.arms])
