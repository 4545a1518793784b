"""`trivium datasets ...`: publish, label, roll back and inspect validation sets (JSONL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

import click
import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from trivium.cli.context import CliState, fail, find_stack_store, print_json, run_async
from trivium.common.contracts.datasets import ROWS_PER_CHUNK
from trivium.common.redis import open_redis
from trivium.common.settings import TriviumSettings
from trivium.registry.datasets import (
    DatasetStore,
    InvalidDatasetError,
    ParsedDataset,
    parse_dataset,
)
from trivium.registry.store import default_actor

__all__ = ("datasets",)

T = TypeVar("T")
pass_state = click.make_pass_decorator(CliState)
actor_option = click.option(
    "--actor",
    default=default_actor,
    show_default="user@host",
    help="Who to record in the audit log.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
_json = msgspec.json.Encoder()


@asynccontextmanager
async def open_datasets(settings: TriviumSettings) -> AsyncIterator[DatasetStore]:
    async with open_redis(settings.redis, settings.data_dir) as client:
        yield DatasetStore(client, settings.registry)


def with_datasets(state: CliState, action: Callable[[DatasetStore], Awaitable[T]]) -> T:
    async def main() -> T:
        settings = find_stack_store(state.settings(TriviumSettings))
        async with open_datasets(settings) as store:
            return await action(store)

    return run_async(main())


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _lines(handle: BinaryIO, advance: Callable[[int], None]) -> Iterator[bytes]:
    for line in handle:
        advance(len(line))
        yield line


def _parse(file: Path, console: Console) -> ParsedDataset:
    size = file.stat().st_size
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn())
    with (
        Progress(*columns, console=console, transient=True, disable=size < 4 << 20) as bar,
        file.open("rb") as handle,
    ):
        task = bar.add_task(f"check {file.name}", total=size)
        try:
            return parse_dataset(_lines(handle, lambda n: bar.advance(task, n)))
        except InvalidDatasetError as exc:
            bar.stop()
            for error in exc.extra["errors"]:
                click.secho(
                    f"{file}:{error['line']}: {error['field']}: {error['message']}", err=True
                )
            more = exc.extra["error_count"] - len(exc.extra["errors"])
            if more:
                click.secho(f"... and {more} more", err=True)
            fail(f"{file}: {exc.extra['error_count']} error(s); nothing published")


@click.group()
def datasets() -> None:
    """Validation sets (JSONL, one case a line): publish, label, roll back, read."""


@datasets.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Dataset name (a-z, 0-9, . _ -).")
@click.option("--label", default=None, help="Also point this label at the version.")
@actor_option
@pass_state
def publish(state: CliState, file: Path, name: str, label: str | None, actor: str) -> None:
    """Publish FILE (JSONL) as a new version of dataset NAME.

    Each line is one case:

    \b
    {"id": "t-1", "input": {"ticket": "..."}, "expected": {"label": "billing"}, "tags": ["en"]}

    `input` (the template's variables) or `messages`; `expected` carries `label`, `answer`
    and/or `doc_ids`, the same members on every line. A bad line rejects the whole file,
    each bad line and field named. The same rows again publish nothing new.
    """
    console = Console(stderr=True)
    parsed = _parse(file, console)
    rows = parsed.manifest.rows

    async def action(store: DatasetStore) -> None:
        with _bar(console) as bar:
            task = bar.add_task(f"write {name}", total=rows, visible=rows > ROWS_PER_CHUNK)
            result = await store.publish(
                name, parsed, actor=actor, progress=lambda n: bar.advance(task, n)
            )
        artifact = result.artifact
        verb = "published" if result.created else "unchanged, already"
        click.echo(f"{verb} {artifact.ref} ({rows} rows) sha256:{artifact.sha256[:12]}")
        if label is not None:
            move = await store.registry.promote(name, label, artifact.version, actor=actor)
            click.echo(f"{name}@{label}: {move.from_version or '-'} -> {move.to_version}")

    with_datasets(state, action)


@datasets.command("list")
@json_option
@pass_state
def list_datasets(state: CliState, as_json: bool) -> None:
    """Every dataset: its latest version and labels."""

    async def action(store: DatasetStore) -> None:
        summaries = await store.registry.list()
        if as_json:
            print_json(summaries)
            return
        for summary in summaries:
            labels = ", ".join(f"{k}={v}" for k, v in summary.labels.items()) or "no labels"
            click.echo(f"{summary.name:<32} v{summary.latest_version:<4} {labels}")

    with_datasets(state, action)


@datasets.command()
@click.argument("ref")
@json_option
@pass_state
def show(state: CliState, ref: str, as_json: bool) -> None:
    """Show REF (name: the latest version; name@label; name@3): its manifest."""

    async def action(store: DatasetStore) -> None:
        version = await store.resolve(ref)
        manifest = store.manifest_of(version)
        if as_json:
            print_json({"ref": version.ref, "sha256": version.sha256, "manifest": manifest})
            return
        labels = await store.registry.labels(version.name)
        pointing = [label for label, v in labels.items() if v == version.version]
        click.echo(f"# {version.ref}  sha256:{version.sha256[:12]}  by {version.created_by}")
        click.echo(f"labels here: {', '.join(pointing) or 'none'}")
        click.echo(f"rows: {manifest.rows} ({manifest.bytes} bytes, {len(manifest.chunks)} chunks)")
        click.echo(f"expects: {', '.join(manifest.expects)}")
        if manifest.labels:
            click.echo(f"label set: {', '.join(manifest.labels)}")
        if manifest.tags:
            click.echo("tags: " + ", ".join(f"{t}={n}" for t, n in manifest.tags.items()))

    with_datasets(state, action)


@datasets.command()
@click.argument("name")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Only the newest N entries."
)
@json_option
@pass_state
def history(state: CliState, name: str, limit: int | None, as_json: bool) -> None:
    """The audit log of dataset NAME: who published and moved what, when."""

    async def action(store: DatasetStore) -> None:
        entries = await store.registry.history(name, limit)
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

    with_datasets(state, action)


@datasets.command()
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
    """Point LABEL of dataset NAME at VERSION (atomic compare-and-set with --expect)."""

    async def action(store: DatasetStore) -> None:
        move = await store.registry.promote(
            name, label, version, expected_current=expected, actor=actor
        )
        note = "" if move.changed else " (already there)"
        click.echo(f"{name}@{label}: {move.from_version or '-'} -> {move.to_version}{note}")

    with_datasets(state, action)


@datasets.command()
@click.argument("name")
@click.option("--label", default="production", show_default=True)
@actor_option
@pass_state
def rollback(state: CliState, name: str, label: str, actor: str) -> None:
    """Move LABEL back to the version it pointed at before its last move."""

    async def action(store: DatasetStore) -> None:
        move = await store.registry.rollback(name, label, actor=actor)
        click.echo(f"{name}@{label}: {move.from_version} -> {move.to_version} (rolled back)")

    with_datasets(state, action)


@datasets.command()
@click.argument("ref")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N rows.")
@pass_state
def rows(state: CliState, ref: str, offset: int, limit: int | None) -> None:
    """Print the rows of REF as JSONL (canonical form), read chunk by chunk."""

    async def action(store: DatasetStore) -> None:
        async for row in store.rows(ref, offset, limit):
            click.echo(_json.encode(row).decode())

    with_datasets(state, action)
