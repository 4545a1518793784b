"""The review series. Labels: feature names of the policy, a `Reason`, a `DecisionKind`."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ("REVIEW_METRICS", "ReviewMetrics")


class ReviewMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.enqueued = Counter(
            "trivium_reviews_enqueued_total",
            "Answers sent to the review queue, by why (flagged, withheld, held, sampled).",
            ["feature", "reason"],
            registry=registry,
        )
        self.dropped = Counter(
            "trivium_reviews_dropped_total",
            "Answers that should have entered the review queue and did not (the queue full "
            "of pending cases, or Redis not answering).",
            ["feature", "cause"],
            registry=registry,
        )
        self.decisions = Counter(
            "trivium_review_decisions_total",
            "Reviewers' decisions, by outcome.",
            ["feature", "decision"],
            registry=registry,
        )
        self.depth = Gauge(
            "trivium_review_queue_depth",
            "Pending reviews per feature (the whole cluster's, as this replica last read it).",
            ["feature"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.oldest = Gauge(
            "trivium_review_oldest_pending_seconds",
            "Age of the oldest pending review per feature (0 when none is pending).",
            ["feature"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.slo = Gauge(
            "trivium_review_slo_seconds",
            "The feature's `review.slo_s`: how long a review may wait.",
            ["feature"],
            registry=registry,
            multiprocess_mode="livemax",
        )


REVIEW_METRICS = ReviewMetrics()
