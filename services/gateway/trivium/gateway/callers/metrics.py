"""Caller series: per key *name* (operator-chosen, bounded) and rejections by reason.

Never a key id, a secret or a prompt in a label: the key's name is what the operator typed
at `trivium keys create --name`.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter

__all__ = ("CALLER_METRICS", "CallerMetrics", "RejectionReason")

RejectionReason = Literal[
    "unauthenticated", "forbidden_feature", "forbidden_scope", "rate_limited", "budget_exceeded"
]

REQUESTS = Counter(
    "trivium_caller_requests_total",
    "Feature requests admitted per caller key name, by outcome.",
    ["key", "status"],
)
TOKENS = Counter("trivium_caller_tokens_total", "Tokens used per caller key name.", ["key", "kind"])
COST = Counter("trivium_caller_cost_usd_total", "Cost in USD per caller key name.", ["key"])
REJECTIONS = Counter(
    "trivium_caller_rejections_total",
    "Requests refused before running, by reason.",
    ["reason"],
)
LIMITER_DEGRADED = Counter(
    "trivium_limiter_degraded_total",
    "Requests admitted by the local per-process limiter (fail_open) or refused with 503 "
    "(fail_closed) because Redis could not be reached.",
    ["policy"],
)


class CallerMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[str, str], tuple[Counter, Counter, Counter, Counter]] = {}
        self._rejections = {
            reason: REJECTIONS.labels(reason=reason)
            for reason in (
                "unauthenticated",
                "forbidden_feature",
                "forbidden_scope",
                "rate_limited",
                "budget_exceeded",
            )
        }

    def rejected(self, reason: RejectionReason) -> None:
        self._rejections[reason].inc()

    def served(self, key: str, status: str, prompt: int, completion: int, cost: float) -> None:
        children = self._children.get((key, status))
        if children is None:
            if len(self._children) >= 10_000:  # bounded even if names churn
                self._children.clear()
            children = self._children[(key, status)] = (
                REQUESTS.labels(key=key, status=status),
                TOKENS.labels(key=key, kind="prompt"),
                TOKENS.labels(key=key, kind="completion"),
                COST.labels(key=key),
            )
        requests, prompt_tokens, completion_tokens, cost_usd = children
        requests.inc()
        if prompt:
            prompt_tokens.inc(prompt)
        if completion:
            completion_tokens.inc(completion)
        if cost:
            cost_usd.inc(cost)

    def degraded(self, policy: Literal["fail_open", "fail_closed"]) -> None:
        LIMITER_DEGRADED.labels(policy=policy).inc()


CALLER_METRICS = CallerMetrics()
