"""`trivium reviews ...`: the human review queue.

`list`, `show` and `decide` talk to a gateway over HTTP (`--gateway URL`, else the running
stack's) with a key of scope `review` (`--api-key` / TRIVIUM_KEY); the decision is audited
with that key's name. `export FEATURE --as-dataset NAME` reads the decided reviews from the
stack's Redis and publishes them as a new version of dataset NAME (trivium.registry.datasets),
for trials: each row's `expected.answer` is the reviewer's (the model's answer when
approved, else the correction).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from trivium.cli.context import CliState, fail, find_stack_store, print_json, run_async
from trivium.cli.trials import connection, gateway_option, key_option
from trivium.common.redis import open_redis
from trivium.common.settings import TriviumSettings
from trivium.gateway.reviews.schemas import ReviewList, ReviewView
from trivium.gateway.reviews.store import ReviewStore
from trivium.registry.datasets import DatasetStore, InvalidDatasetError, parse_dataset
from trivium.registry.store import default_actor

__all__ = ("reviews",)

pass_state = click.make_pass_decorator(CliState)
_ENCODER = msgspec.json.Encoder()


def _options(command: Any) -> Any:
    """--gateway and --api-key as every gateway client command takes them, and --json."""
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    return gateway_option(key_option(command))


@click.group()
def reviews() -> None:
    """The human review queue: flagged, withheld, held and sampled answers."""


@reviews.command("list")
@click.option("--feature", default=None, help="Only this feature's reviews.")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "corrected", "rejected"]),
    default="pending",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@_options
@pass_state
def list_reviews(
    state: CliState,
    feature: str | None,
    status: str,
    limit: int,
    gateway: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Reviews, newest first."""
    query = f"?status={status}&limit={limit}" + (f"&feature={feature}" if feature else "")
    found = msgspec.json.decode(
        _call(state, gateway, api_key, "GET", f"/v1/reviews{query}"), type=ReviewList
    )
    if as_json:
        print_json(found)
        return
    table = Table(title=f"reviews ({status})")
    for column in ("id", "feature", "why", "status", "groundedness", "created"):
        table.add_column(column)
    for r in found.reviews:
        score = "n/a" if r.groundedness is None else f"{r.groundedness:.2f}"
        table.add_row(r.id, r.feature, r.reason, r.status, score, _when(r.created_ms))
    Console().print(table)


@reviews.command()
@click.argument("review_id")
@_options
@pass_state
def show(
    state: CliState, review_id: str, gateway: str | None, api_key: str | None, as_json: bool
) -> None:
    """One review: the request, passages, output, lineage and decision."""
    _print(_call(state, gateway, api_key, "GET", f"/v1/reviews/{review_id}"), as_json)


@reviews.command()
@click.argument("review_id")
@click.argument("decision", type=click.Choice(["approve", "correct", "reject"]))
@click.option("--correction", default=None, help="The right answer (needed by correct).")
@click.option("--note", default=None, help="Why (kept with the decision).")
@_options
@pass_state
def decide(
    state: CliState,
    review_id: str,
    decision: str,
    correction: str | None,
    note: str | None,
    gateway: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Approve, correct or reject a pending review."""
    body = {"decision": decision, "correction": correction, "note": note}
    payload = {k: v for k, v in body.items() if v is not None}
    path = f"/v1/reviews/{review_id}:decide"
    _print(_call(state, gateway, api_key, "POST", path, payload), as_json)


@reviews.command()
@click.argument("feature")
@click.option("--as-dataset", "name", required=True, help="The dataset to publish.")
@click.option("--label", default=None, help="Also point this label at the new version.")
@click.option("--actor", default=default_actor, show_default="user@host")
@pass_state
def export(state: CliState, feature: str, name: str, label: str | None, actor: str) -> None:
    """Publish FEATURE's decided reviews as a new version of dataset NAME."""

    async def main() -> None:
        settings = find_stack_store(state.settings(TriviumSettings))
        async with open_redis(settings.redis, settings.data_dir) as client:
            store = ReviewStore(
                client, settings.registry.key_prefix, retention_s=0, max_per_feature=1
            )
            rows = await store.decided_rows(feature)
            if not rows:
                fail(f"no decided review of {feature!r} with a kept input and an answer")
            try:
                parsed = parse_dataset(_ENCODER.encode(row) for row in rows)
            except InvalidDatasetError as exc:
                fail(f"the reviews do not make a dataset: {exc.message}")
            datasets = DatasetStore(client, settings.registry)
            result = await datasets.publish(name, parsed, actor=actor)
            verb = "published" if result.created else "unchanged, already"
            click.echo(f"{verb} {result.artifact.ref} ({len(rows)} rows from {feature} reviews)")
            if label is not None:
                move = await datasets.registry.promote(
                    name, label, result.artifact.version, actor=actor
                )
                click.echo(f"{name}@{label}: {move.from_version or '-'} -> {move.to_version}")

    run_async(main())


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print(payload: bytes, as_json: bool) -> None:
    view = msgspec.json.decode(payload, type=ReviewView)
    if as_json:
        print_json(view)
        return
    console = Console()
    console.print(
        f"[bold]{view.id}[/bold]  {view.feature}  {view.reason}  {view.status}", markup=True
    )
    case = view.case
    if case is not None:
        score = "n/a" if case.groundedness is None else f"{case.groundedness:.2f}"
        console.print(f"groundedness {score}  route {case.route}  caller {case.caller}")
        console.print(
            f"input: {json.dumps(case.input or case.messages, default=str)}", markup=False
        )
        console.print(f"output: {case.output}", markup=False)
        for p in case.passages:
            console.print(f"  [{p.index}] {p.doc_id}: {p.text[:200]}", markup=False)
    if view.decision is not None:
        d = view.decision
        console.print(f"decision: {d.decision} by {d.reviewer} at {_when(d.decided_ms)}")
        if d.correction:
            console.print(f"correction: {d.correction}", markup=False)
    elif view.output is not None:
        console.print(f"answer: {view.output}", markup=False)


def _call(
    state: CliState,
    gateway: str | None,
    api_key: str | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> bytes:
    url, key = connection(state, gateway, api_key)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (the user's URL)
        f"{url.rstrip('/')}{path}", data=data, method=method
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            payload: bytes = response.read()
            return payload
    except urllib.error.HTTPError as exc:
        text = exc.read()[:2000].decode(errors="replace")
        try:
            problem = json.loads(text)
            detail = problem.get("detail") or problem.get("title")
            fail(f"{detail} [{exc.code} {problem.get('code')}]")
        except (ValueError, AttributeError):
            fail(f"gateway at {url} answered {exc.code}: {text[:300]}")
    except (urllib.error.URLError, OSError) as exc:
        fail(f"gateway at {url} unreachable: {exc}")
