"""The report as one self-contained HTML page: inline CSS, plots as inline SVG, no scripts,
no external assets (not even a favicon request)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from trivium.common.contracts.trials import Comparison, TrialRecord
from trivium.trials.report.common import facts, summary_of
from trivium.trials.report.figures import Plot, plot_svg
from trivium.trials.report.tables import (
    COMPARISON_HEADER,
    KPI_HEADER,
    arm_rows,
    comparison_rows,
    online_rows,
    overview_header,
    overview_rows,
)

__all__ = ("render_html",)

AFTER_THE_NAME = range(1, 64)
"""The columns after a row's name: numbers, right-aligned."""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d2430; background: #ffffff; }
h1 { font-size: 1.6rem; margin-bottom: .4rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #dde3ea; }
h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .92rem; }
th, td { border: 1px solid #dde3ea; padding: .3rem .6rem; text-align: left; }
th { background: #f3f6f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
ul.verdicts li.significant { font-weight: 600; color: #0b6b2f; }
ul.verdicts li.inconclusive { color: #5b6470; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(28rem, 1fr));
         gap: 1.5rem; align-items: start; }
figure.plot { margin: 0; min-width: 0; }
figure.plot svg { display: block; width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #5b6470; margin-top: .3rem; }
section.arm { break-inside: avoid; }
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: range) -> str:
    """A table; the cells in the `numeric` columns are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>' if i in numeric else f"<td>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(plot: Plot) -> str:
    svg = plot_svg(plot).replace(
        "<svg ", f'<svg role="img" aria-label="{escape(plot.description)}" ', 1
    )
    return (
        f'<figure class="plot" id="plot-{escape(plot.key)}">{svg}'
        f"<figcaption><strong>{escape(plot.title)}.</strong> {escape(plot.description)}"
        f"</figcaption></figure>"
    )


def _verdicts(comparisons: Sequence[Comparison]) -> str:
    if not comparisons:
        return "<p>No pairwise comparisons (fewer than two arms answered the same cases).</p>"
    items = "".join(
        f'<li class="{"significant" if c.significant else "inconclusive"}">{escape(c.verdict)}</li>'
        for c in comparisons
    )
    return f'<ul class="verdicts">{items}</ul>' + _table(
        COMPARISON_HEADER, comparison_rows(comparisons), numeric=range(2, 6)
    )


def render_html(record: TrialRecord, plots: Sequence[Plot]) -> str:
    summary = summary_of(record)
    title = f"Trial {record.id}: {record.feature}"
    facts_html = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts(record)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<dl class="facts">{facts_html}</dl>',
        "<h2>At a glance</h2>",
        _table(overview_header(summary.arms), overview_rows(summary.arms), numeric=AFTER_THE_NAME),
        "<h2>Comparisons</h2>",
        _verdicts(summary.comparisons),
    ]
    if plots:
        parts += ["<h2>Plots</h2>", '<div class="plots">', *map(_figure, plots), "</div>"]
    for arm in summary.arms:
        parts += [
            f'<section class="arm" id="arm-{escape(arm.arm)}">',
            f"<h2>Arm <code>{escape(arm.arm)}</code></h2>",
            _table(KPI_HEADER, [row.cells() for row in arm_rows(arm)], numeric=AFTER_THE_NAME),
        ]
        online = online_rows(arm)
        if online:
            parts += [
                "<h3>Online feedback</h3>",
                _table(KPI_HEADER, [row.cells() for row in online], numeric=AFTER_THE_NAME),
            ]
        parts.append("</section>")
    parts += [
        "<p><small>Intervals are 95% bootstrap intervals over the cases each KPI counts."
        "</small></p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
