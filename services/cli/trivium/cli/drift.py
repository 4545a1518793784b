"""`trivium drift ...`: a feature's drift signals, and resetting its baseline.

Over HTTP like `trivium rollouts`: `--gateway URL`, else the running stack's; the key of
`--api-key` / TRIVIUM_KEY, else the stack's demo key. `show` needs scope `read`, `baseline`
needs `policy:reload`.
"""

from __future__ import annotations

from urllib.parse import quote

import click
import msgspec
from rich.console import Console
from rich.table import Table

from trivium.cli.context import CliState, print_json
from trivium.cli.rollouts import _call, _options
from trivium.common.contracts.drift import BaselineReset, FeatureDrift

__all__ = ("drift",)

pass_state = click.make_pass_decorator(CliState)


@click.group()
def drift() -> None:
    """Drift of queries, retrieval, answers, cost and latency against a baseline."""


@drift.command("show")
@click.argument("feature")
@_options
@pass_state
def show(
    state: CliState, feature: str, gateway: str | None, api_key: str | None, as_json: bool
) -> None:
    """Each signal against its threshold, and the drifting query clusters."""
    path = f"/v1/features/{quote(feature, safe='')}/drift"
    report = msgspec.json.decode(_call(state, gateway, api_key, "GET", path), type=FeatureDrift)
    if as_json:
        print_json(report)
        return
    table = Table(
        title=f"{feature}: baseline {report.baseline} ({report.baseline_n}/"
        f"{report.baseline_size}), window {report.window_n}/{report.window_size}"
    )
    for column in ("signal", "value", "threshold", "drifting"):
        table.add_column(column)
    for signal in report.signals:
        value = "-" if signal.value is None else f"{signal.value:.3f}"
        table.add_row(signal.name, value, f"{signal.threshold:g}", "yes" if signal.drifting else "")
    console = Console()
    console.print(table)
    if report.retrieval_error:
        console.print(f"retriever: {report.retrieval_error}")
    for cluster in report.clusters:
        console.print(
            f"cluster of {cluster.size} ({cluster.share:.0%} of the window, distance "
            f"{cluster.distance:.2f}): " + " | ".join(cluster.examples)
        )


@drift.command("baseline")
@click.argument("feature")
@_options
@pass_state
def baseline(
    state: CliState, feature: str, gateway: str | None, api_key: str | None, as_json: bool
) -> None:
    """Reset FEATURE's baseline: its next requests are frozen as the new one."""
    path = f"/v1/features/{quote(feature, safe='')}/drift/baseline"
    reset = msgspec.json.decode(_call(state, gateway, api_key, "POST", path), type=BaselineReset)
    if as_json:
        print_json(reset)
        return
    click.echo(f"{feature}: collecting a new baseline: {', '.join(reset.reset)}")
    if reset.retrieval_error:
        click.echo(f"retriever: {reset.retrieval_error}", err=True)
