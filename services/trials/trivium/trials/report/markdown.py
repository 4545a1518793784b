"""The report as Markdown: tables and verdicts as text, the plots as PNG files beside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from trivium.common.contracts.trials import TrialRecord
from trivium.trials.report.common import facts, summary_of
from trivium.trials.report.figures import Plot
from trivium.trials.report.tables import (
    COMPARISON_HEADER,
    KPI_HEADER,
    arm_rows,
    comparison_rows,
    online_rows,
    overview_header,
    overview_rows,
)

__all__ = ("plot_file_name", "render_markdown")


def plot_file_name(stem: str, plot: Plot) -> str:
    return f"{stem}-{plot.key}.png"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(record: TrialRecord, plots: Sequence[Plot], stem: str) -> str:
    """The Markdown report; each plot is linked as `<stem>-<key>.png` beside the file."""
    summary = summary_of(record)
    lines = [f"# Trial {record.id}: {_cell(record.feature)}", ""]
    lines += _table(("", ""), [(f"**{name}**", value) for name, value in facts(record)])
    lines += ["## At a glance", ""]
    lines += _table(overview_header(summary.arms), overview_rows(summary.arms))
    lines += ["## Comparisons", ""]
    if summary.comparisons:
        lines += [
            f"- {'**' + _cell(c.verdict) + '**' if c.significant else _cell(c.verdict)}"
            for c in summary.comparisons
        ]
        lines += ["", *_table(COMPARISON_HEADER, comparison_rows(summary.comparisons))]
    else:
        lines += ["No pairwise comparisons (fewer than two arms answered the same cases).", ""]
    if plots:
        lines += ["## Plots", ""]
        for plot in plots:
            lines += [
                f"### {_cell(plot.title)}",
                "",
                f"![{_cell(plot.description)}]({plot_file_name(stem, plot)})",
                "",
            ]
    for arm in summary.arms:
        lines += [f"## Arm `{arm.arm}`", ""]
        lines += _table(KPI_HEADER, [row.cells() for row in arm_rows(arm)])
        online = online_rows(arm)
        if online:
            lines += ["### Online feedback", ""]
            lines += _table(KPI_HEADER, [row.cells() for row in online])
    lines.append("Intervals are 95% bootstrap intervals over the cases each KPI counts.")
    return "\n".join(lines) + "\n"
