"""`trivium trial ...`: run a feature's arms over a dataset through a gateway, list, show, report.

Every command talks to a gateway: `--gateway URL`, else the running stack's (its stack.json),
with the key of `--api-key` / TRIVIUM_KEY, else the stack's demo key file. Running and
storing need a key with scope `trials`; reading needs `read`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import click
from rich.console import Console
from rich.table import Table

from trivium.cli.context import CliState, fail, print_json, run_async
from trivium.cli.demo_key import demo_key_file
from trivium.cli.stack import StackState, find_running_stack, read_live_state
from trivium.common.contracts.trials import ArmSummary, CaseResult, Estimate, TrialRecord
from trivium.common.settings import TriviumSettings
from trivium.trials.client import GatewayClient
from trivium.trials.progress import ArmProgressBars
from trivium.trials.runner import (
    BATCH_SIZE,
    RunOutcome,
    Scorer,
    Summariser,
    TrialAbortedError,
    TrialPlan,
    TrialRunner,
    resume_command,
    run_until_ctrl_c,
)

__all__ = ("gateway_option", "key_option", "load_scoring", "trial", "with_gateway")

T = TypeVar("T")
pass_state = click.make_pass_decorator(CliState)
gateway_option = click.option(
    "--gateway",
    "gateway",
    metavar="URL",
    default=None,
    help="The gateway's base URL; default: the running stack's (stack.json).",
)
report_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
)
report_out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (md also writes its plots beside it); default: print to stdout.",
)
key_option = click.option(
    "--api-key",
    "api_key",
    envvar="TRIVIUM_KEY",
    default=None,
    help="Bearer key (env TRIVIUM_KEY); default: the running stack's demo key.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
EXIT_INTERRUPTED = 130


def load_scoring() -> tuple[Scorer, Summariser]:
    """The real scoring: `score_case` and `summarise_trial` (imported when a trial runs)."""
    from trivium.trials.scoring import score_case
    from trivium.trials.summary import summarise_trial

    return score_case, summarise_trial


@click.group()
def trial() -> None:
    """Trials: one dataset through every road of a feature, scored with the same KPIs."""


@trial.command()
@click.argument("feature")
@click.option(
    "--dataset",
    "dataset",
    metavar="NAME[@label]",
    default=None,
    help="The dataset (NAME, NAME@label, NAME@version); a resumed trial keeps its own.",
)
@click.option(
    "--arms",
    "arms",
    metavar="A,B",
    default=None,
    help="Roads or variants to run (default: every road the feature can take, and its variants).",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 500),
    default=BATCH_SIZE,
    show_default=True,
    help="Results per store request; a killed run loses at most one batch (and 5 s of work).",
)
@click.option("--resume", "resume", metavar="ID", default=None, help="Resume trial ID.")
@click.option("--note", default=None, help="A note stored with the trial.")
@click.option(
    "--judge",
    "judge",
    metavar="FEATURE",
    default=None,
    help="Score each answer with this feature of the policy (an LLM judge: faithfulness and "
    "correctness); its cost is reported apart.",
)
@gateway_option
@key_option
@pass_state
def run(
    state: CliState,
    feature: str,
    dataset: str | None,
    arms: str | None,
    concurrency: int,
    batch_size: int,
    resume: str | None,
    note: str | None,
    judge: str | None,
    gateway: str | None,
    api_key: str | None,
) -> None:
    """Send every case of a dataset through FEATURE's arms on the gateway and score them.

    Ctrl-C stores what is done, marks the trial interrupted and prints how to resume it."""
    if dataset is None and resume is None:
        fail("--dataset NAME[@label] is required (or --resume ID)")
    url, key = connection(state, gateway, api_key)
    scorer, summariser = load_scoring()
    plan = TrialPlan(
        feature=feature,
        dataset=dataset,
        arms=[a.strip() for a in arms.split(",") if a.strip()] if arms else None,
        concurrency=concurrency,
        resume=resume,
        note=note,
        judge=judge,
    )

    async def main() -> RunOutcome:
        async with GatewayClient(url, key) as client:
            runner = TrialRunner(
                client,
                scorer=scorer,
                summariser=summariser,
                observer=ArmProgressBars(),
                batch_size=batch_size,
            )
            try:
                return await run_until_ctrl_c(runner, plan)
            except TrialAbortedError as exc:
                _say_resume(exc.record, gateway, judge)
                raise

    outcome = run_async(main())
    if outcome.interrupted:
        click.echo(f"interrupted: trial {outcome.record.id}, {_progress(outcome.record)}", err=True)
        _say_resume(outcome.record, gateway, judge)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(f"trial {outcome.record.id} finished: {_progress(outcome.record)}")
    _print_record(outcome.record)


@trial.command(name="list")
@click.option("--feature", default=None, help="Only this feature's trials.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@gateway_option
@key_option
@json_option
@pass_state
def list_trials(
    state: CliState,
    feature: str | None,
    limit: int,
    gateway: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Trials, newest first."""
    records = with_gateway(state, gateway, api_key, lambda c: c.trials(feature, limit))
    if as_json:
        print_json(records)
        return
    table = Table("id", "feature", "dataset", "arms", "status", "done", "created")
    for record in records:
        table.add_row(
            record.id,
            record.feature,
            record.dataset,
            ",".join(record.arms),
            record.status,
            _progress(record),
            _when(record.created_at),
        )
    Console().print(table)


@trial.command()
@click.argument("trial_id", metavar="ID")
@gateway_option
@key_option
@json_option
@pass_state
def show(
    state: CliState, trial_id: str, gateway: str | None, api_key: str | None, as_json: bool
) -> None:
    """A trial: its arms, progress, and each arm's KPIs once it has finished."""
    record = with_gateway(state, gateway, api_key, lambda c: c.trial(trial_id))
    if as_json:
        print_json(record)
    else:
        _print_record(record)


@trial.command()
@click.argument("trial_id", metavar="ID")
@report_format_option
@report_out_option
@gateway_option
@key_option
@pass_state
def report(
    state: CliState,
    trial_id: str,
    fmt: Literal["md", "html", "json"],
    out: Path | None,
    gateway: str | None,
    api_key: str | None,
) -> None:
    """A finished trial's report: a table per arm, quality vs cost, latency, confusion."""
    from trivium.trials.report import render_report, write_report

    async def fetch(client: GatewayClient) -> tuple[TrialRecord, dict[str, list[CaseResult]]]:
        record = await client.trial(trial_id)
        return record, {arm: await client.cases(record.id, arm) for arm in record.arms}

    record, cases = with_gateway(state, gateway, api_key, fetch)
    if record.summary is None:
        fail(f"trial {record.id} is {record.status}: no summary yet ({_progress(record)})")
    if out is None:
        click.echo(render_report(record, cases, fmt))
        return
    for path in write_report(record, cases, fmt, out):
        click.echo(str(path))


# -- helpers ----------------------------------------------------------------------------


def connection(state: CliState, gateway: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The gateway URL and key: as given, else the running stack's gateway and demo key."""
    stack = _running_stack(state) if gateway is None or api_key is None else None
    if gateway is None:
        if stack is None or "gateway" not in stack.services:
            fail("no running stack found (trivium up); pass --gateway URL")
        gateway = stack.services["gateway"]
    if api_key is None and stack is not None:
        key_file = demo_key_file(Path(stack.data_dir))
        if key_file.is_file():
            api_key = key_file.read_text().strip() or None
    return gateway, api_key


def _running_stack(state: CliState) -> StackState | None:
    settings = state.settings(TriviumSettings)
    stack = read_live_state(settings.data_dir.resolve())
    if stack is None and "data_dir" not in settings.model_fields_set:
        stack = find_running_stack(Path.cwd().parent, settings.data_dir.name)
    return stack


def with_gateway(
    state: CliState,
    gateway: str | None,
    api_key: str | None,
    action: Callable[[GatewayClient], Awaitable[T]],
) -> T:
    url, key = connection(state, gateway, api_key)

    async def main() -> T:
        async with GatewayClient(url, key) as client:
            return await action(client)

    return run_async(main())


def _say_resume(record: TrialRecord, gateway: str | None, judge: str | None = None) -> None:
    click.echo(f"resume with: {resume_command(record, gateway, judge)}", err=True)


def _progress(record: TrialRecord) -> str:
    return ", ".join(f"{arm} {record.done.get(arm, 0)}/{record.cases}" for arm in record.arms)


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_record(record: TrialRecord) -> None:
    console = Console()
    console.print(
        f"[bold]{record.id}[/]  feature {record.feature}  dataset {record.dataset}  "
        f"status {record.status}  created {_when(record.created_at)} by {record.created_by}"
    )
    console.print(f"done: {_progress(record)}")
    if record.summary is None:
        return
    console.print(_arm_table(record.summary.arms))
    for comparison in record.summary.comparisons:
        console.print(f"  {comparison.verdict}", highlight=False)


ARM_COLUMNS: Sequence[tuple[str, Callable[[ArmSummary], Estimate | float | None]]] = (
    ("accuracy", lambda s: s.accuracy),
    ("macro-F1", lambda s: s.macro_f1),
    ("token F1", lambda s: s.token_f1),
    ("recall@k", lambda s: s.recall_at_k),
    ("MRR", lambda s: s.mrr),
    ("ungrounded", lambda s: s.ungrounded),
    ("out of labels", lambda s: s.out_of_labels),
    ("errors", lambda s: s.errors),
    ("fallbacks", lambda s: s.fallbacks),
    ("p50 ms", lambda s: s.latency_ms["total"].p50 if "total" in s.latency_ms else None),
    ("p95 ms", lambda s: s.latency_ms["total"].p95 if "total" in s.latency_ms else None),
    ("$/1k req", lambda s: s.cost_per_1k_requests_usd),
)


def _arm_table(arms: Sequence[ArmSummary]) -> Table:
    """One row per arm; a column only when some arm has a value for it."""
    columns = [(name, get) for name, get in ARM_COLUMNS if any(get(a) is not None for a in arms)]
    table = Table("arm", "cases", *(name for name, _ in columns))
    for summary in arms:
        table.add_row(summary.arm, str(summary.cases), *(_cell(get(summary)) for _, get in columns))
    return table


def _cell(value: Estimate | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, Estimate):
        return f"{value.value:.3g} [{value.low:.3g}, {value.high:.3g}]"
    return f"{value:.3g}"
