"""The report's plots, drawn with matplotlib's Agg/SVG renderers (no pyplot, no display).

- quality vs cost: one point per arm at (cost per 1,000 requests, headline quality KPI), with
  both 95% intervals as bars;
- latency: the distribution (ECDF) of each arm's total milliseconds per answered case;
- a confusion matrix per arm (classification trials): expected x predicted counts.

Each is a `Plot`; `plot_svg` and `plot_png` render one. Text stays text in the SVG (selectable,
small) and is never read as mathtext, so a label such as "$5 plan" prints as written.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from trivium.common.contracts.trials import ArmSummary, CaseResult, TrialRecord
from trivium.trials.report.tables import headline_quality

__all__ = (
    "OTHER_LABEL",
    "Plot",
    "confusion_plot",
    "latency_plot",
    "plot_png",
    "plot_svg",
    "quality_cost_plot",
    "report_plots",
)

OTHER_LABEL = "(other)"
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
STYLE: dict[RcKeyType, object] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "trivium-report",
    "text.parse_math": False,
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


@dataclass(frozen=True)
class Plot:
    key: str
    """A file-name slug: `quality-cost`, `latency`, `confusion-<arm>`."""
    title: str
    description: str
    """What the plot shows, in words (the image's alt text)."""
    figure: Figure


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def quality_cost_plot(arms: Sequence[ArmSummary]) -> Plot | None:
    """Each arm at (cost per 1k requests, headline quality), 95% intervals as bars; None
    when no arm reports a quality KPI."""
    headline = headline_quality(arms)
    if headline is None:
        return None
    member, name, _ = headline
    costs = {arm.cost_per_1k_requests_usd.value for arm in arms}
    # Every arm at one cost (a local model priced at 0): spread the arms along x by name.
    by_arm = len(arms) > 1 and len(costs) == 1
    with _style():
        figure = Figure(figsize=(6.4, 4.2), layout="constrained")
        axes = figure.add_subplot()
        for index, arm in enumerate(arms):
            quality = getattr(arm, member)
            if quality is None:
                continue
            cost = arm.cost_per_1k_requests_usd
            x = float(index) if by_arm else cost.value
            axes.errorbar(
                [x],
                [quality.value],
                xerr=None if by_arm else [[cost.value - cost.low], [cost.high - cost.value]],
                yerr=[[quality.value - quality.low], [quality.high - quality.value]],
                fmt="o",
                markersize=8,
                capsize=4,
                color=_colour(index),
                label=arm.arm,
            )
            axes.annotate(
                arm.arm,
                (x, quality.value),
                textcoords="offset points",
                xytext=(8, 6),
                color=_colour(index),
            )
        if by_arm:
            axes.set_xticks(range(len(arms)), labels=[arm.arm for arm in arms])
            axes.set_xlim(-0.6, len(arms) - 0.4)
            axes.set_xlabel(f"arm (every arm costs ${costs.pop():,.4f} per 1,000 requests)")
        else:
            axes.set_xlabel("cost per 1,000 requests (USD)")
        axes.set_ylabel(name)
        axes.set_ylim(-0.02, 1.05)
        axes.set_title(f"{name} vs cost (95% intervals)")
        axes.legend(loc="best", fontsize=9)
    return Plot(
        "quality-cost",
        f"Quality vs cost: {name}",
        f"Scatter of {name} against cost per 1,000 requests, one point per arm, "
        "with 95% bootstrap intervals as bars.",
        figure,
    )


def _totals(results: Sequence[CaseResult]) -> list[float]:
    return sorted(
        r.timings_ms["total"]
        for r in results
        if r.ok and "total" in r.timings_ms and math.isfinite(r.timings_ms["total"])
    )


def latency_plot(cases: Mapping[str, Sequence[CaseResult]], arms: Sequence[str]) -> Plot | None:
    """The ECDF of total ms per answered case, one line per arm; None when no case has one."""
    totals = {arm: _totals(cases.get(arm, ())) for arm in arms}
    every = [value for values in totals.values() for value in values]
    if not every:
        return None
    with _style():
        figure = Figure(figsize=(6.4, 4.2), layout="constrained")
        axes = figure.add_subplot()
        for index, arm in enumerate(arms):
            values = np.asarray(totals[arm], dtype=float)
            if values.size == 0:
                continue
            share = np.arange(1, values.size + 1) / values.size
            p50, p95 = np.percentile(values, [50, 95])
            axes.step(
                values,
                share,
                where="post",
                color=_colour(index),
                linewidth=1.8,
                label=f"{arm}: P50 {p50:.0f} ms, P95 {p95:.0f} ms (n={values.size})",
            )
        low, high = min(every), max(every)
        if low > 0 and high / low > 20:
            axes.set_xscale("log")
        axes.axhline(0.95, color="#999999", linestyle=":", linewidth=1)
        axes.set_xlabel("total latency per case (ms)")
        axes.set_ylabel("share of cases at or below")
        axes.set_ylim(0, 1.02)
        axes.set_title("Latency distribution per arm (ECDF)")
        axes.legend(loc="lower right", fontsize=8)
    return Plot(
        "latency",
        "Latency distribution per arm",
        "Empirical cumulative distribution of total latency per answered case, one line per "
        "arm; the dotted line marks the 95th percentile.",
        figure,
    )


def _confusion_axes(confusion: Mapping[str, Mapping[str, int]]) -> tuple[list[str], list[str]]:
    expected = sorted(confusion)
    predicted_only = sorted(
        {p for row in confusion.values() for p in row} - set(expected) - {OTHER_LABEL}
    )
    other = [OTHER_LABEL] if any(OTHER_LABEL in row for row in confusion.values()) else []
    return expected, [*expected, *predicted_only, *other]


def confusion_plot(arm: ArmSummary, index: int = 0) -> Plot | None:
    """The arm's confusion matrix as a heatmap with the count in each cell; None without one."""
    if not arm.confusion:
        return None
    rows, columns = _confusion_axes(arm.confusion)
    counts = np.array([[arm.confusion[r].get(c, 0) for c in columns] for r in rows], dtype=float)
    peak = counts.max() if counts.size else 0.0
    with _style():
        width = min(12.0, 2.4 + 0.75 * len(columns))
        height = min(10.0, 1.8 + 0.6 * len(rows))
        figure = Figure(figsize=(width, height), layout="constrained")
        axes = figure.add_subplot()
        axes.grid(visible=False)
        image = axes.imshow(counts, cmap="Blues", vmin=0, vmax=max(peak, 1.0), aspect="auto")
        for r, c in np.ndindex(counts.shape):
            value = int(counts[r, c])
            dark = peak > 0 and counts[r, c] > peak * 0.55
            axes.text(
                c, r, str(value), ha="center", va="center", color="white" if dark else "#222222"
            )
        axes.set_xticks(range(len(columns)), labels=columns, rotation=30, ha="right")
        axes.set_yticks(range(len(rows)), labels=rows)
        axes.set_xlabel("predicted label")
        axes.set_ylabel("expected label")
        axes.set_title(f"Confusion matrix: {arm.arm}", color=_colour(index))
        figure.colorbar(image, ax=axes, shrink=0.8, label="cases")
    return Plot(
        f"confusion-{arm.arm}",
        f"Confusion matrix: {arm.arm}",
        f"Heatmap of expected against predicted labels for arm {arm.arm}, with the number of "
        "cases in each cell.",
        figure,
    )


def report_plots(record: TrialRecord, cases: Mapping[str, Sequence[CaseResult]]) -> list[Plot]:
    """Every plot the trial can show, in report order."""
    arms = record.summary.arms if record.summary else []
    arm_names = [arm.arm for arm in arms] or list(record.arms)
    plots = [quality_cost_plot(arms), latency_plot(cases, arm_names)]
    plots += [confusion_plot(arm, index) for index, arm in enumerate(arms)]
    return [plot for plot in plots if plot is not None]


def plot_svg(plot: Plot) -> str:
    """The plot as an inline `<svg>` element (no XML declaration or doctype)."""
    buffer = io.StringIO()
    with _style():
        plot.figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plot_png(plot: Plot, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    with _style():
        plot.figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
