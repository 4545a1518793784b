"""What the report's tables say, once for every format: rows of already formatted cells.

Markdown and HTML render the same rows; only the markup differs. A rate is a percentage, a
score three decimals, money dollars, a latency milliseconds; an interval is "[low, high]".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from trivium.common.contracts.trials import ArmSummary, Comparison, Estimate

__all__ = (
    "COMPARISON_HEADER",
    "KPI_HEADER",
    "KpiRow",
    "arm_rows",
    "comparison_rows",
    "headline_quality",
    "online_rows",
    "overview_header",
    "overview_rows",
)

Unit = Literal["rate", "score", "usd"]
KPI_HEADER = ("KPI", "value", "95% interval", "n")
COMPARISON_HEADER = ("metric", "B vs A", "n", "B - A", "95% interval", "p", "test", "verdict")

# The quality KPIs, the headline first: the first one a trial has is its quality axis.
QUALITY: tuple[tuple[str, str, Unit], ...] = (
    ("accuracy", "accuracy", "rate"),
    ("recall_at_k", "recall@k", "score"),
    ("mrr", "MRR", "score"),
    ("token_f1", "token F1", "score"),
    ("exact_match", "exact match", "rate"),
    ("judge_correctness", "judge: correctness", "score"),
    ("judge_faithfulness", "judge: faithfulness", "score"),
)
HALLUCINATION: tuple[tuple[str, str, Unit], ...] = (
    ("out_of_labels", "answers outside the label set", "rate"),
    ("ungrounded", "ungrounded answers", "rate"),
)
RELIABILITY: tuple[tuple[str, str, Unit], ...] = (
    ("errors", "errors", "rate"),
    ("fallbacks", "fallbacks", "rate"),
)


@dataclass(frozen=True)
class KpiRow:
    kpi: str
    value: str
    interval: str
    n: str

    def cells(self) -> tuple[str, str, str, str]:
        return (self.kpi, self.value, self.interval, self.n)


def _formatter(unit: Unit) -> Callable[[float], str]:
    if unit == "rate":
        return lambda v: f"{v * 100:.1f}%"
    if unit == "usd":
        return lambda v: f"${v:,.4f}"
    return lambda v: f"{v:.3f}"


def _estimate_row(name: str, estimate: Estimate, unit: Unit) -> KpiRow:
    fmt = _formatter(unit)
    return KpiRow(
        name, fmt(estimate.value), f"[{fmt(estimate.low)}, {fmt(estimate.high)}]", str(estimate.n)
    )


def _plain_row(name: str, text: str) -> KpiRow:
    return KpiRow(name, text, "—", "—")


def _estimates(arm: ArmSummary, members: Sequence[tuple[str, str, Unit]]) -> list[KpiRow]:
    rows = []
    for member, name, unit in members:
        estimate = getattr(arm, member)
        if estimate is not None:
            rows.append(_estimate_row(name, estimate, unit))
    return rows


def headline_quality(arms: Sequence[ArmSummary]) -> tuple[str, str, Unit] | None:
    """The first quality KPI (in `QUALITY` order) any arm reports above zero; else the first
    any arm reports at all (a label trial of a model that never names a label still has
    recall to show); None when there is none."""
    reported = [
        (member, name, unit)
        for member, name, unit in QUALITY
        if arms and any(getattr(arm, member) is not None for arm in arms)
    ]
    for member, name, unit in reported:
        if any(
            (estimate := getattr(arm, member)) is not None and estimate.value > 0 for arm in arms
        ):
            return member, name, unit
    return reported[0] if reported else None


def arm_rows(arm: ArmSummary) -> list[KpiRow]:
    """Every KPI the arm has, in the order quality, hallucination, latency, cost, reliability."""
    rows = _estimates(arm, QUALITY[:1])
    if arm.macro_f1 is not None:
        rows.append(_plain_row("macro-F1", f"{arm.macro_f1:.3f}"))
    rows += _estimates(arm, QUALITY[1:])
    rows += _estimates(arm, HALLUCINATION)
    stages = sorted(arm.latency_ms, key=lambda stage: (stage != "total", stage))
    for stage in stages:
        latency = arm.latency_ms[stage]
        rows.append(
            _plain_row(
                f"latency {stage} (ms) P50 / P95 / P99",
                f"{latency.p50:.1f} / {latency.p95:.1f} / {latency.p99:.1f}",
            )
        )
    rows.append(_estimate_row("cost per 1,000 requests", arm.cost_per_1k_requests_usd, "usd"))
    rows.append(_plain_row("prompt tokens (mean)", f"{arm.prompt_tokens_mean:.1f}"))
    rows.append(_plain_row("completion tokens (mean)", f"{arm.completion_tokens_mean:.1f}"))
    if arm.training_cost_usd is not None:
        rows.append(_plain_row("training cost (one-off)", f"${arm.training_cost_usd:,.2f}"))
    if arm.judge_cost_usd is not None:
        rows.append(_plain_row("judge cost", f"${arm.judge_cost_usd:,.4f}"))
    if arm.judge_unscored:
        rows.append(_plain_row("judge: unscored cases", str(arm.judge_unscored)))
    rows += _estimates(arm, RELIABILITY)
    rows.append(_plain_row("cases", str(arm.cases)))
    return rows


def online_rows(arm: ArmSummary) -> list[KpiRow]:
    """Production feedback rates for the arm (empty when none are known)."""
    online = arm.online or {}
    return [_estimate_row(f"online: {name}", online[name], "rate") for name in sorted(online)]


def overview_header(arms: Sequence[ArmSummary]) -> tuple[str, ...]:
    headline = headline_quality(arms)
    quality = (headline[1],) if headline else ()
    return ("arm", *quality, "cost / 1k requests", "P95 total (ms)", "errors", "fallbacks")


def overview_rows(arms: Sequence[ArmSummary]) -> list[tuple[str, ...]]:
    """One row per arm: the headline quality, cost, tail latency and reliability."""
    headline = headline_quality(arms)
    rows = []
    for arm in arms:
        quality: tuple[str, ...] = ()
        if headline is not None:
            estimate = getattr(arm, headline[0])
            quality = (_formatter(headline[2])(estimate.value) if estimate else "—",)
        total = arm.latency_ms.get("total")
        rows.append(
            (
                arm.arm,
                *quality,
                _formatter("usd")(arm.cost_per_1k_requests_usd.value),
                f"{total.p95:.1f}" if total else "—",
                _formatter("rate")(arm.errors.value),
                _formatter("rate")(arm.fallbacks.value),
            )
        )
    return rows


def comparison_rows(comparisons: Sequence[Comparison]) -> list[tuple[str, ...]]:
    return [
        (
            c.metric,
            f"{c.b} vs {c.a}",
            str(c.n),
            f"{c.difference:+.3f}",
            f"[{c.low:+.3f}, {c.high:+.3f}]",
            f"{c.p_value:.3g}",
            c.test,
            c.verdict,
        )
        for c in comparisons
    ]
