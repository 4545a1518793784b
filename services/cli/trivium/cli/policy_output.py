"""How `trivium policy` commands read to a person (rich text; `--json` bypasses this)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from trivium.gateway.policy import PolicyDiff, PolicyIssue, PolicyReport
from trivium.gateway.policy.diff import Change, EntryChanges, FeatureDiff
from trivium.gateway.policy.model import Feature
from trivium.gateway.policy.routes import PolicyView

__all__ = ("FileResult", "print_check", "print_diff", "print_errors", "print_policy")


@dataclass(frozen=True)
class FileResult:
    file: str
    report: PolicyReport


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _issues(out: Console, kind: str, style: str, issues: Iterable[PolicyIssue]) -> None:
    for issue in issues:
        out.print(f"  [{style}]{kind}[/]  [bold]{escape(issue.path)}[/]: {escape(issue.message)}")


def print_check(results: Sequence[FileResult]) -> None:
    out = _console()
    for result in results:
        report = result.report
        warnings = _count(len(report.warnings), "warning")
        if report.valid:
            version = "" if report.version is None else f", version {report.version}"
            out.print(
                f"[bold]{escape(result.file)}[/]: [green]valid[/] "
                f"(hash {report.hash}{version}), {warnings}"
            )
        else:
            errors = _count(len(report.errors), "error")
            out.print(f"[bold]{escape(result.file)}[/]: [red]invalid[/], {errors}, {warnings}")
        _issues(out, "error", "red", report.errors)
        _issues(out, "warning", "yellow", report.warnings)


def print_errors(source: str, issues: Sequence[PolicyIssue]) -> None:
    out = Console(highlight=False, soft_wrap=True, stderr=True)
    out.print(f"[bold]{escape(source)}[/]: [red]invalid[/], {_count(len(issues), 'error')}")
    _issues(out, "error", "red", issues)


def print_diff(changes: PolicyDiff) -> None:
    out = _console()
    old, new = changes.old, changes.new
    out.print(f"policy {old.hash} (version {old.version}) -> {new.hash} (version {new.version})")
    if changes.upstreams or changes.changed_upstreams:
        parts = _entries(changes.upstreams)
        parts += [f"~ {name}" for name in changes.changed_upstreams]
        out.print(f"upstreams: {escape(', '.join(parts))}")
    if not changes.features:
        out.print("no feature changes")
    for feature in changes.features:
        out.print()
        _feature(out, feature)


def _feature(out: Console, feature: FeatureDiff) -> None:
    name = f"[bold]{escape(feature.feature)}[/]"
    if feature.status != "changed":
        [route] = feature.routes
        colour, road = ("green", route.new) if feature.status == "added" else ("red", route.old)
        out.print(f"{name}  [{colour}]{feature.status}[/] (route {road})")
        return
    out.print(f"{name}  changed")
    if feature.arms:
        out.print(f"  weights: [bold]{feature.moved_share:.2%}[/] of users move to another arm")
        width = max(len(arm.arm) for arm in feature.arms)
        for arm in feature.arms:
            if not (arm.old_share or arm.new_share):
                continue
            flows = [f"{arm.left:.2%} leave" if arm.left else ""]
            flows.append(f"{arm.joined:.2%} join" if arm.joined else "")
            out.print(
                f"    {escape(arm.arm):<{width}}  {arm.old_share:7.2%} -> {arm.new_share:7.2%}"
                f"  {', '.join(flow for flow in flows if flow)}".rstrip()
            )
    for title, entries in (
        ("variants", feature.variants),
        ("fallback", feature.fallback),
        ("shadow", feature.shadow),
    ):
        if entries:
            out.print(f"  {title}: {escape(', '.join(_entries(entries)))}")
    for change in (*feature.routes, *feature.upstreams, *feature.references):
        out.print(f"  {_change(change)}")
    if feature.other_settings:
        out.print(f"  also changed: {', '.join(feature.other_settings)}")


def _entries(entries: EntryChanges) -> list[str]:
    return [f"+ {entry}" for entry in entries.added] + [f"- {entry}" for entry in entries.removed]


def _change(change: Change) -> str:
    return f"{escape(change.path)}: {change.old or '(unset)'} -> {change.new or '(unset)'}"


def print_policy(view: PolicyView, *, live: bool) -> None:
    out = _console()
    when = dt.datetime.fromtimestamp(view.loaded_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    out.print(f"[bold]policy[/] {view.hash}  version {view.version}")
    out.print(f"source: {escape(view.source or '(no policy file)')}")
    out.print(f"{'loaded' if live else 'read'}: {when}Z")
    for name, feature in view.features.items():
        out.print(f"\n[bold]{escape(name)}[/]  {feature.route} on {escape(feature.upstream)}")
        for title, value in (
            ("template", feature.template or ""),
            ("adapter", feature.adapter or ""),
            ("collection", feature.retrieval.collection if feature.retrieval else ""),
            ("variants", _variants(feature)),
            ("fallback", ", ".join(feature.fallback)),
            ("shadow", ", ".join(feature.shadow)),
        ):
            if value:
                out.print(f"  {title:<10} {escape(value)}")
    out.print()
    upstreams = ", ".join(f"{name} ({u.model} at {u.url})" for name, u in view.upstreams.items())
    out.print(f"upstreams: {escape(upstreams or 'none')}")


def _variants(feature: Feature) -> str:
    total = sum(variant.weight for variant in feature.variants.values())
    return ", ".join(
        f"{name} {variant.weight / total:.0%}" for name, variant in feature.variants.items()
    )
