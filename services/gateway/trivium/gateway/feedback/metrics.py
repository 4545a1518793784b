"""The feedback series. Label values: feature, variant and route names from the policy that
served the answer (read back from its record), a kind from `FeedbackKind`, and a bounded value
(`value_label`): never user input."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

__all__ = ("FEEDBACK_METRICS", "FeedbackMetrics")


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.feedback = Counter(
            "trivium_feedback_total",
            "Feedback events from the calling product, attributed to what served the answer "
            "(every event; /v1/stats counts each answer's last event of a kind).",
            ["feature", "variant", "route", "kind", "value"],
            registry=registry,
        )
        records = Counter(
            "trivium_answer_records_total",
            "Answer records written to Redis for feedback, or dropped (buffer full while "
            "Redis did not answer).",
            ["result"],
            registry=registry,
        )
        self.records_written = records.labels("written")
        self.records_dropped = records.labels("dropped")
        self._children: dict[tuple[str, str, str, str, str], Counter] = {}

    def event(self, feature: str, variant: str, route: str, kind: str, value: str) -> None:
        key = (feature, variant, route, kind, value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.feedback.labels(*key)
        child.inc()


FEEDBACK_METRICS = FeedbackMetrics()
