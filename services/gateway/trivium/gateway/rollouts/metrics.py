"""Rollout series: each canary's step and the controller's events (bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from trivium.gateway.rollouts.state import OUTCOMES

__all__ = ("EVENTS", "LEADER", "STEP")

STEP = Gauge(
    "trivium_rollout_step",
    "Percent of its feature's traffic each rollout's canary takes now (0: not started, "
    "rolled back or aborted), as this replica last read the shared state.",
    ["feature", "variant"],
    multiprocess_mode="livemax",
)
EVENTS = Counter(
    "trivium_rollout_events_total",
    "Rollout events written by this process: started, restarted, advanced, completed, "
    "rolled_back, paused, resumed, aborted, ended.",
    ["outcome"],
)
LEADER = Gauge(
    "trivium_rollout_leader",
    "1 while this process holds the rollout lease and drives every rollout.",
    multiprocess_mode="livesum",
)

for _outcome in OUTCOMES:
    EVENTS.labels(_outcome)
