"""Drift series: one per feature and signal (both bounded: the policy's features, `SIGNALS`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ("DRIFT_ALERTS", "DRIFT_SCORE", "DRIFT_THRESHOLD")

DRIFT_SCORE = Gauge(
    "trivium_drift_score",
    "A drift signal's value: the window against the feature's frozen baseline",
    ["feature", "signal"],
    multiprocess_mode="livemax",
)
DRIFT_THRESHOLD = Gauge(
    "trivium_drift_threshold",
    "The value above which a drift signal is drifting",
    ["feature", "signal"],
    multiprocess_mode="livemax",
)
DRIFT_ALERTS = Counter(
    "trivium_drift_alerts_total",
    "Times a drift signal crossed its threshold (counted when it starts drifting)",
    ["feature", "signal"],
)
