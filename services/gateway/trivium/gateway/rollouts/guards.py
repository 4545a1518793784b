"""A step's guards, judged from the window's numbers: pure, no I/O.

Each guard compares the canary with its control over the same window: rates by their
difference (canary minus control, or control minus canary for the "drop" guards), latency and
cost by their ratio. A guard with no data on either side (no scored answers, no feedback, a
control with no requests for a ratio) is not judged. A control with no requests counts as a
0 error and fallback rate, so a canary at the last steps is still held to its limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from trivium.gateway.policy.model import Rollout
from trivium.gateway.rollouts.state import GuardReading
from trivium.gateway.telemetry.stats import WindowStats

__all__ = ("Judgement", "judge")

Verdict = Literal["pass", "fail", "wait"]


class Judgement(msgspec.Struct, frozen=True):
    verdict: Verdict
    """fail: a guard failed; wait: fewer canary requests than `guard_min_requests`."""
    canary_requests: int
    control_requests: int
    readings: tuple[GuardReading, ...]

    @property
    def failed(self) -> tuple[GuardReading, ...]:
        return tuple(r for r in self.readings if r.passed is False)

    def reason(self) -> str:
        """The failed guards in words, with their numbers."""
        return "; ".join(_describe(r) for r in self.failed) or "every guard held"


def _describe(r: GuardReading) -> str:
    return (
        f"{r.guard}: canary {_num(r.canary)} vs control {_num(r.control)} "
        f"-> {_num(r.value)} over the limit {_num(r.limit)}"
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _rate(hits: int, of: int) -> float:
    return hits / of if of else 0.0


def _reading(
    guard: str,
    limit: float | None,
    canary: float | None,
    control: float | None,
    value: float | None,
) -> GuardReading | None:
    if limit is None:
        return None
    passed = None if value is None else value <= limit + 1e-12
    return GuardReading(
        guard=guard,
        canary=_round(canary),
        control=_round(control),
        value=_round(value),
        limit=limit,
        passed=passed,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def judge(rollout: Rollout, canary: WindowStats | None, control: WindowStats | None) -> Judgement:
    """The guards of `rollout` over one window's numbers for the canary and its control."""
    g = rollout.guards
    c_n = canary.count if canary else 0
    k_n = control.count if control else 0
    c_err = _rate(canary.errors, c_n) if canary else 0.0
    k_err = _rate(control.errors, k_n) if control else 0.0
    c_fb = _rate(canary.fallbacks, c_n) if canary else 0.0
    k_fb = _rate(control.fallbacks, k_n) if control else 0.0
    readings = [
        _reading("max_error_rate_increase", g.max_error_rate_increase, c_err, k_err, c_err - k_err)
        if c_n
        else _reading("max_error_rate_increase", g.max_error_rate_increase, None, k_err, None),
        _reading(
            "max_fallback_rate_increase", g.max_fallback_rate_increase, c_fb, k_fb, c_fb - k_fb
        )
        if c_n
        else _reading("max_fallback_rate_increase", g.max_fallback_rate_increase, None, k_fb, None),
        _ratio("max_p95_latency_ratio", g.max_p95_latency_ratio, canary, control, _p95),
        _drop(
            "max_groundedness_drop",
            g.max_groundedness_drop,
            canary.mean_groundedness if canary else None,
            control.mean_groundedness if control else None,
        ),
        _ratio("max_cost_ratio", g.max_cost_ratio, canary, control, _cost),
        _drop(
            "max_completion_rate_drop",
            g.max_completion_rate_drop,
            _completion(canary),
            _completion(control),
        ),
    ]
    kept = tuple(r for r in readings if r is not None)
    if c_n < rollout.guard_min_requests:
        verdict: Verdict = "wait"
    elif any(r.passed is False for r in kept):
        verdict = "fail"
    else:
        verdict = "pass"
    return Judgement(verdict=verdict, canary_requests=c_n, control_requests=k_n, readings=kept)


def _p95(stats: WindowStats) -> float:
    return stats.latency_ms.p95


def _cost(stats: WindowStats) -> float:
    return stats.mean_cost_usd


def _completion(stats: WindowStats | None) -> float | None:
    if stats is None or stats.feedback is None:
        return None
    return stats.feedback.completion.rate


def _ratio(
    guard: str,
    limit: float | None,
    canary: WindowStats | None,
    control: WindowStats | None,
    of: Callable[[WindowStats], float],
) -> GuardReading | None:
    c = of(canary) if canary and canary.count else None
    k = of(control) if control and control.count else None
    value = c / k if c is not None and k else None
    return _reading(guard, limit, c, k, value)


def _drop(
    guard: str, limit: float | None, canary: float | None, control: float | None
) -> GuardReading | None:
    value = control - canary if canary is not None and control is not None else None
    return _reading(guard, limit, canary, control, value)
