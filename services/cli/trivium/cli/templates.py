"""`trivium templates ...`: publish, promote, roll back, inspect and render prompt templates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from trivium.cli.context import CliState, fail, print_json, with_templates
from trivium.registry import Registry
from trivium.registry.store import default_actor
from trivium.registry.templates import TemplateRenderer, parse_template_file

__all__ = ("templates",)

pass_state = click.make_pass_decorator(CliState)
actor_option = click.option(
    "--actor",
    default=default_actor,
    show_default="user@host",
    help="Who to record in the audit log.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group()
def templates() -> None:
    """Versioned prompt templates: publish, label, roll back, diff, render."""


@templates.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Template name (a-z, 0-9, . _ -).")
@click.option("--promote", "label", default=None, help="Also point this label at the new version.")
@actor_option
@pass_state
def publish(state: CliState, file: Path, name: str, label: str | None, actor: str) -> None:
    """Publish FILE as a new version of template NAME.

    FILE is Jinja2 with YAML front matter declaring its variables:

    \b
    ---
    variables: [question, passages]
    ---
    Answer {{ question }} using ...
    """
    body, metadata = parse_template_file(file.read_text(encoding="utf-8"))

    async def action(registry: Registry) -> None:
        result = await registry.publish(name, body, metadata, actor=actor)
        artifact = result.artifact
        verb = "published" if result.created else "unchanged, already"
        click.echo(f"{verb} {artifact.ref} sha256:{artifact.sha256[:12]}")
        if label is not None:
            move = await registry.promote(name, label, artifact.version, actor=actor)
            click.echo(f"{name}@{label}: {move.from_version or '-'} -> {move.to_version}")

    with_templates(state, action)


@templates.command()
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--label", default="production", show_default=True)
@click.option(
    "--expect",
    "expected",
    type=click.IntRange(min=0),
    default=None,
    help="Only move the label if it points at this version now (0: label must not exist).",
)
@actor_option
@pass_state
def promote(
    state: CliState, name: str, version: int, label: str, expected: int | None, actor: str
) -> None:
    """Point LABEL of template NAME at VERSION (atomic compare-and-set with --expect)."""

    async def action(registry: Registry) -> None:
        move = await registry.promote(name, label, version, expected_current=expected, actor=actor)
        note = "" if move.changed else " (already there)"
        click.echo(f"{name}@{label}: {move.from_version or '-'} -> {move.to_version}{note}")

    with_templates(state, action)


@templates.command()
@click.argument("name")
@click.option("--label", default="production", show_default=True)
@actor_option
@pass_state
def rollback(state: CliState, name: str, label: str, actor: str) -> None:
    """Move LABEL back to the version it pointed at before its last move."""

    async def action(registry: Registry) -> None:
        move = await registry.rollback(name, label, actor=actor)
        click.echo(f"{name}@{label}: {move.from_version} -> {move.to_version} (rolled back)")

    with_templates(state, action)


@templates.command()
@click.argument("name")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Only the newest N entries."
)
@json_option
@pass_state
def history(state: CliState, name: str, limit: int | None, as_json: bool) -> None:
    """The audit log of template NAME: who changed what, when."""

    async def action(registry: Registry) -> None:
        entries = await registry.history(name, limit)
        if as_json:
            print_json(entries)
            return
        for entry in entries:
            when = dt.datetime.fromtimestamp(entry.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            if entry.action == "publish":
                what = f"published version {entry.version}"
            else:
                what = f"{entry.label}: {entry.from_version or '-'} -> {entry.to_version}"
            click.echo(f"{when}Z  {entry.actor:<24} {entry.action:<9} {what}")

    with_templates(state, action)


@templates.command()
@click.argument("name")
@click.argument("old")
@click.argument("new")
@pass_state
def diff(state: CliState, name: str, old: str, new: str) -> None:
    """Unified diff between two versions or labels of NAME (e.g. `diff qa 3 production`)."""

    async def action(registry: Registry) -> None:
        text = await registry.diff(name, old, new)
        click.echo(text or f"{name}@{old} and {name}@{new} are identical", nl=not text)

    with_templates(state, action)


@templates.command()
@click.argument("ref", required=False)
@json_option
@pass_state
def show(state: CliState, ref: str | None, as_json: bool) -> None:
    """Show REF (name, name@label, name@3), or list every template when REF is omitted."""

    async def action(registry: Registry) -> None:
        if ref is None:
            summaries = await registry.list()
            if as_json:
                print_json(summaries)
            for summary in [] if as_json else summaries:
                labels = ", ".join(f"{k}={v}" for k, v in summary.labels.items()) or "no labels"
                click.echo(f"{summary.name:<32} v{summary.latest_version:<4} {labels}")
            return
        artifact = await registry.resolve(ref)
        if as_json:
            print_json(artifact)
            return
        click.echo(f"# {artifact.ref}  sha256:{artifact.sha256[:12]}  by {artifact.created_by}")
        click.echo(f"# variables: {', '.join(artifact.metadata.get('variables', [])) or 'none'}")
        click.echo(artifact.body, nl=not artifact.body.endswith("\n"))

    with_templates(state, action)


@templates.command()
@click.argument("ref")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="A template variable.")
@click.option(
    "--json-var",
    "json_variables",
    multiple=True,
    metavar="KEY=JSON",
    help='A variable given as JSON (lists, objects): --json-var passages=\'[{"text": "..."}]\'.',
)
@pass_state
def render(
    state: CliState, ref: str, variables: tuple[str, ...], json_variables: tuple[str, ...]
) -> None:
    """Render REF with --var KEY=VALUE (or --json-var KEY=JSON) for each declared variable."""
    values: dict[str, object] = {}
    for item in variables:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--var expects KEY=VALUE, got {item!r}")
        values[key] = value
    for item in json_variables:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--json-var expects KEY=JSON, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            fail(f"--json-var {key}: not JSON ({exc.msg} at character {exc.pos})")

    async def action(registry: Registry) -> None:
        artifact = await registry.resolve(ref)
        text = TemplateRenderer().render(artifact, values)
        click.echo(text, nl=not text.endswith("\n"))

    with_templates(state, action)
