"""Trial traffic: the arm a trial forces, and who may force one.

A trial names an arm by a road (`prompt`, `rag`, ...: the feature's own arm on that road, when
the feature names what that road needs) or by one of the feature's variants (that variant's
arm). Roads win, as in fallback and shadow entries: a variant may not be named like one.
"""

from __future__ import annotations

import msgspec

from trivium.common.errors import InvalidInputError
from trivium.gateway.callers import Authenticator, Caller
from trivium.gateway.policy.document import ROAD_NEEDS
from trivium.gateway.policy.model import ROADS, Arm, Feature

__all__ = ("UnknownArmError", "require_trials_scope", "trial_arm", "trial_arms")


class UnknownArmError(InvalidInputError):
    code = "unknown_arm"


def trial_arms(feature_name: str, feature: Feature) -> dict[str, Arm]:
    """Every arm a trial may force on this feature, by the name a trial gives it."""
    base = feature.arm(feature_name, None)
    arms: dict[str, Arm] = {}
    for road in ROADS:
        on_road = base if road == base.route else msgspec.structs.replace(base, route=road)
        if _runs(on_road):
            arms[road] = on_road
    for variant in feature.variants:
        if variant not in arms:
            arms[variant] = feature.arm(feature_name, variant)
    return arms


def trial_arm(feature_name: str, feature: Feature, name: str) -> Arm:
    """The arm `name` forces, or 400 naming `trial.arm` with the arms the feature can take."""
    if name in feature.variants and name not in ROADS:
        return feature.arm(feature_name, name)
    arms = trial_arms(feature_name, feature)
    arm = arms.get(name)
    if arm is None:
        raise UnknownArmError(
            f"feature {feature_name!r} cannot take arm {name!r} "
            f"(its arms: {', '.join(arms) or 'none'})",
            field="trial.arm",
            extra={"arms": list(arms)},
        )
    return arm


def _runs(arm: Arm) -> bool:
    have = {"template": arm.template, "adapter": arm.adapter, "retrieval": arm.retrieval}
    return all(have.get(need) is not None for need in ROAD_NEEDS[arm.route])


async def require_trials_scope(
    authenticator: Authenticator, authorization: str | None, caller: Caller
) -> None:
    """A trial tag needs the `trials` scope (403 naming `trial`), in every auth mode: in
    `auth.mode: open` the request must then carry a credential that has it (an admin token or
    a key with `trials`), since a forced arm bypasses the experiment's assignment."""
    if authenticator.mode == "open":
        caller = await authenticator.authenticate(authorization) if authorization else caller
    authenticator.require(caller, "trials", field="trial")
