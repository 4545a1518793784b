"""A trial's report: Markdown (+ PNG plots beside it), self-contained HTML, or JSON.

`render_report(record, cases, fmt)` returns the text; `write_report(record, cases, fmt, out)`
writes it to `out` and, for Markdown, the plots as `<out stem>-<plot>.png` beside it, and
returns every path written. The JSON is the `TrialRecord` itself (summary included), so it
decodes back into one. Needs the `trials` extra (matplotlib, numpy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from trivium.common.contracts.trials import CaseResult, TrialRecord
from trivium.trials.report.common import summary_of
from trivium.trials.report.figures import Plot, plot_png, report_plots
from trivium.trials.report.html import render_html
from trivium.trials.report.markdown import plot_file_name, render_markdown

__all__ = ("REPORT_FORMATS", "ReportFormat", "render_report", "write_report")

ReportFormat = Literal["md", "html", "json"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("md", "html", "json")


def _plots(record: TrialRecord, cases: Mapping[str, Sequence[CaseResult]]) -> list[Plot]:
    summary_of(record)  # no plots for a trial that cannot be reported
    return report_plots(record, cases)


def _render(record: TrialRecord, fmt: ReportFormat, plots: Sequence[Plot], stem: str) -> str:
    if fmt == "json":
        summary_of(record)
        return msgspec.json.format(msgspec.json.encode(record), indent=2).decode() + "\n"
    if fmt == "html":
        return render_html(record, plots)
    return render_markdown(record, plots, stem)


def render_report(
    record: TrialRecord, cases: Mapping[str, Sequence[CaseResult]], fmt: ReportFormat
) -> str:
    """The report as text. Markdown links its plots as `<trial id>-<plot>.png` (which only
    `write_report` writes)."""
    plots = [] if fmt == "json" else _plots(record, cases)
    return _render(record, fmt, plots, record.id)


def write_report(
    record: TrialRecord,
    cases: Mapping[str, Sequence[CaseResult]],
    fmt: ReportFormat,
    out: Path,
) -> list[Path]:
    """Writes the report to `out` (and Markdown's PNG plots beside it); the paths written."""
    plots = [] if fmt == "json" else _plots(record, cases)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_render(record, fmt, plots, out.stem), encoding="utf-8")
    written = [out]
    if fmt == "md":
        for plot in plots:
            path = out.with_name(plot_file_name(out.stem, plot))
            path.write_bytes(plot_png(plot))
            written.append(path)
    return written
