"""A decision (`trivium.common.contracts.decision.Decision`) as Markdown, HTML or JSON.

The gateway computes the decision; this only lays it out. HTML carries the trial's plots
drawn from its summary (quality vs cost, confusion matrices) inline as SVG; Markdown links
them as `<stem>-<plot>.png`, which `write_decision` writes beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

import msgspec

from trivium.common.contracts.decision import Check, Decision, RuleOutcome, StageView
from trivium.trials.report.figures import Plot, plot_png, report_plots
from trivium.trials.report.html import CSS, _figure
from trivium.trials.report.html import _table as html_table
from trivium.trials.report.markdown import _table as md_table
from trivium.trials.report.markdown import plot_file_name

__all__ = (
    "BREAK_EVEN_HEADER",
    "CHECK_HEADER",
    "ROI_HEADER",
    "break_even_rows",
    "check_rows",
    "decision_plots",
    "render_decision",
    "roi_rows",
    "staged_path",
    "write_decision",
)

CHECK_HEADER = ("arm", "requirement", "threshold", "measured", "95% interval", "verdict")
ROI_HEADER = (
    "arm",
    "road",
    "cost / 1k req",
    "monthly cost",
    "one-off",
    "P95 ms",
    "headroom ms",
)
BREAK_EVEN_HEADER = (
    "adapter",
    "versus",
    "training",
    "saving / 1k req",
    "break-even requests",
    "months at volume",
)
STAGE_NAMES = {"prompt": "prompt", "rag": "RAG", "finetune": "fine-tune", "hybrid": "hybrid"}
DASH = "-"


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def _usd(value: float | None) -> str:
    if value is None:
        return DASH
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def _threshold(check: Check) -> str:
    sign = ">=" if check.requirement == "min_quality" else "<="
    metric = f"{check.metric} " if check.metric and check.requirement == "min_quality" else ""
    return f"{metric}{sign} {_number(check.threshold)}"


def check_rows(checks: Sequence[Check]) -> list[tuple[str, ...]]:
    return [
        (
            c.arm,
            c.requirement,
            _threshold(c),
            _number(c.measured),
            DASH if c.low is None else f"[{_number(c.low)}, {_number(c.high)}]",
            c.verdict,
        )
        for c in checks
    ]


def roi_rows(decision: Decision) -> list[tuple[str, ...]]:
    return [
        (
            r.arm,
            r.road or "(not in the policy)",
            _usd(r.cost_per_1k_usd),
            _usd(r.monthly_cost_usd),
            _usd(r.one_off_usd),
            _number(r.p95_ms, 0),
            _number(r.latency_headroom_ms, 0),
        )
        for r in decision.roi
    ]


def break_even_rows(decision: Decision) -> list[tuple[str, ...]]:
    return [
        (
            b.adapter,
            b.versus,
            _usd(b.training_cost_usd),
            _usd(b.saving_per_1k_usd),
            "never" if b.break_even_requests is None else f"{b.break_even_requests:,.0f}",
            _number(b.months_at_declared_volume, 2),
        )
        for b in decision.break_even
    ]


def _stage_label(view: StageView) -> str:
    marks = [m for m, on in (("HERE", view.current), ("RECOMMENDED", view.recommended)) if on]
    details = [*marks, view.best_verdict or "not measured"]
    return f"{STAGE_NAMES[view.stage]} ({'; '.join(details)})"


def staged_path(decision: Decision) -> str:
    """`prompt -> RAG -> fine-tune -> hybrid`, with where the feature stands and goes."""
    return " -> ".join(_stage_label(view) for view in decision.path)


def _requirement_lines(decision: Decision) -> list[str]:
    declared = msgspec.to_builtins(decision.requirements)
    if not declared:
        return ["none declared (add a `requirements:` block to the feature's policy entry)"]
    return [f"{name}: {value}" for name, value in declared.items()]


def _rule_lines(rule: RuleOutcome) -> list[str]:
    lines = [f"Finding: {rule.finding}."]
    if rule.favours:
        lines.append(f"Favours: {', '.join(rule.favours)}.")
    if rule.excludes:
        lines.append(f"Rules out: {', '.join(rule.excludes)}.")
    lines += [f"Asks: {action}." for action in rule.actions]
    lines.append(f"Cited: `{rule.citation}`.")
    return lines


def _headline(decision: Decision) -> str:
    r = decision.recommendation
    target = r.arm or r.road or "nothing measured"
    hedge = "" if r.confident else " (not yet certain)"
    return f"Recommendation: {target}{hedge}"


def decision_plots(decision: Decision) -> list[Plot]:
    """The trial's plots its summary can draw (quality vs cost, confusion matrices)."""
    return report_plots(decision.trial, {})


def render_markdown(decision: Decision, plots: Sequence[Plot], stem: str) -> str:
    r = decision.recommendation
    lines = [
        f"# Decision: {decision.feature}",
        "",
        f"Trial `{decision.trial.id}` on `{decision.trial.dataset}`; the feature runs "
        f"`{decision.current_road}` (policy `{decision.policy_hash}`).",
        "",
        f"## {_headline(decision)}",
        "",
        *[f"- {reason}" for reason in r.reasons],
        "",
        f"Staged path: {staged_path(decision)}",
        "",
        "## Requirements",
        "",
        *[f"- {line}" for line in _requirement_lines(decision)],
        "",
        "## Each road against each requirement",
        "",
        *(md_table(CHECK_HEADER, check_rows(decision.checks)) if decision.checks else []),
        "## The framework's rules",
        "",
    ]
    if not decision.rules:
        lines += ["None applies to what this feature declares.", ""]
    for rule in decision.rules:
        lines += [f"### {rule.text}", "", *[f"- {line}" for line in _rule_lines(rule)], ""]
    lines += ["## ROI at the declared volume", "", *md_table(ROI_HEADER, roi_rows(decision))]
    if decision.break_even:
        lines += md_table(BREAK_EVEN_HEADER, break_even_rows(decision))
    if online := online_rows(decision):
        lines += ["## Online: what production reported", "", *md_table(ONLINE_HEADER, online)]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.description}]({plot_file_name(stem, p)})" for p in plots] + [""]
    return "\n".join(lines)


ONLINE_HEADER = ("arm", "production feedback", "rate", "95% interval", "n")


def online_rows(decision: Decision) -> list[tuple[str, ...]]:
    """Each arm's production feedback rates (Step 9b) beside the trial's offline numbers."""
    summary = decision.trial.summary
    rows: list[tuple[str, ...]] = []
    for arm in summary.arms if summary is not None else ():
        for name, rate in sorted((arm.online or {}).items()):
            interval = f"[{rate.low:.3f}, {rate.high:.3f}]"
            rows.append((arm.arm, name, f"{rate.value:.3f}", interval, str(rate.n)))
    return rows


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def render_html(decision: Decision, plots: Sequence[Plot]) -> str:
    title = f"Decision: {decision.feature}"
    numeric = range(2, 7)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Trial <code>{escape(decision.trial.id)}</code> on "
        f"<code>{escape(decision.trial.dataset)}</code>; the feature runs "
        f"<code>{escape(decision.current_road)}</code> (policy "
        f"<code>{escape(decision.policy_hash)}</code>).</p>",
        f'<h2 id="recommendation">{escape(_headline(decision))}</h2>',
        _list(decision.recommendation.reasons),
        f'<p id="path">Staged path: {escape(staged_path(decision))}</p>',
        "<h2>Requirements</h2>",
        _list(_requirement_lines(decision)),
        "<h2>Each road against each requirement</h2>",
        html_table(CHECK_HEADER, check_rows(decision.checks), numeric=range(2, 5)),
        "<h2>The framework's rules</h2>",
    ]
    if not decision.rules:
        parts.append("<p>None applies to what this feature declares.</p>")
    for rule in decision.rules:
        parts += [f'<h3 id="rule-{escape(rule.rule)}">{escape(rule.text)}</h3>']
        parts.append(_list(line.replace("`", "") for line in _rule_lines(rule)))
    parts += [
        "<h2>ROI at the declared volume</h2>",
        html_table(ROI_HEADER, roi_rows(decision), numeric=numeric),
    ]
    if decision.break_even:
        parts.append(html_table(BREAK_EVEN_HEADER, break_even_rows(decision), numeric=numeric))
    if online := online_rows(decision):
        parts += [
            "<h2>Online: what production reported</h2>",
            html_table(ONLINE_HEADER, online, numeric=range(2, 5)),
        ]
    if plots:
        parts += ["<h2>Plots</h2>", '<div class="plots">', *map(_figure, plots), "</div>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _render(decision: Decision, fmt: str, plots: Sequence[Plot], stem: str) -> str:
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(decision), indent=2).decode() + "\n"
    if fmt == "html":
        return render_html(decision, plots)
    return render_markdown(decision, plots, stem)


def render_decision(decision: Decision, fmt: str) -> str:
    """The decision as text; Markdown links its plots as `<feature>-<plot>.png`."""
    plots = [] if fmt == "json" else decision_plots(decision)
    return _render(decision, fmt, plots, decision.feature)


def write_decision(decision: Decision, fmt: str, out: Path) -> list[Path]:
    """Writes the decision to `out` (and Markdown's PNG plots beside it); the paths written."""
    plots = [] if fmt == "json" else decision_plots(decision)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_render(decision, fmt, plots, out.stem), encoding="utf-8")
    written = [out]
    if fmt == "md":
        for plot in plots:
            path = out.with_name(plot_file_name(out.stem, plot))
            path.write_bytes(plot_png(plot))
            written.append(path)
    return written
