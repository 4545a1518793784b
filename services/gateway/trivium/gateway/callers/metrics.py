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
        REQUESTS.labels(key=key, status=status).inc()
        if prompt:
            TOKENS.labels(key=key, kind="prompt").inc(prompt)
        if completion:
            TOKENS.labels(key=key, kind="completion").inc(completion)
        if cost:
            COST.labels(key=key).inc(cost)

    def degraded(self, policy: Literal["fail_open", "fail_closed"]) -> None:
        LIMITER_DEGRADED.labels(policy=policy).inc()


CALLER_METRICS = CallerMetrics()
