"""Canary rollouts with automatic rollback: a variant's `rollout:` block, driven by the one
replica holding the lease, guarded against its control over the stats window."""

from trivium.gateway.rollouts.controller import RolloutController
from trivium.gateway.rollouts.lease import Lease, replica_id
from trivium.gateway.rollouts.plan import EffectiveWeights
from trivium.gateway.rollouts.routes import RolloutRoutes
from trivium.gateway.rollouts.state import RolloutStore

__all__ = (
    "EffectiveWeights",
    "Lease",
    "RolloutController",
    "RolloutRoutes",
    "RolloutStore",
    "replica_id",
)
