"""What the rollout routes answer."""

from __future__ import annotations

import msgspec

from trivium.gateway.rollouts.plan import EffectiveWeights
from trivium.gateway.rollouts.state import RolloutEvent

__all__ = ("LeaseView", "RolloutList", "RolloutView")


class RolloutView(msgspec.Struct, frozen=True):
    feature: str
    variant: str
    id: str
    """The rollout's hash: editing its block in the policy file starts a new one."""
    control: str
    status: str
    """pending (not started by the controller yet), running, paused, aborted, rolled_back,
    completed."""
    steps: tuple[float, ...]
    step: int
    """1-based; 0 while pending."""
    percent: float
    """The canary's share of the feature's traffic now, in percent."""
    started_at: float | None
    step_started_at: float | None
    effective_weights: EffectiveWeights
    history: tuple[RolloutEvent, ...]
    """Oldest first, the last 100; every event is in the audit stream too."""


class LeaseView(msgspec.Struct, frozen=True):
    holder: str
    """The replica driving every rollout (host:pid:suffix)."""
    token: int
    """Its fencing token: each new holder gets a larger one."""


class RolloutList(msgspec.Struct, frozen=True):
    replica: str
    """The replica that answered."""
    lease: LeaseView | None
    rollouts: list[RolloutView]
