"""`trivium decide FEATURE --trial ID`: a finished trial against the feature's requirements.

The gateway computes the decision (`GET /v1/features/{feature}/decision?trial=ID`, scope
`read`); this renders it as Markdown, HTML (with the trial's plots) or JSON. The gateway and
key are found like `trivium trial`'s: `--gateway`, `--api-key` / TRIVIUM_KEY, else the
running stack's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from trivium.cli.context import CliState
from trivium.cli.trials import (
    gateway_option,
    key_option,
    report_format_option,
    report_out_option,
    with_gateway,
)

__all__ = ("decide",)

pass_state = click.make_pass_decorator(CliState)


@click.command()
@click.argument("feature")
@click.option("--trial", "trial_id", required=True, metavar="ID", help="A finished trial's id.")
@report_format_option
@report_out_option
@gateway_option
@key_option
@pass_state
def decide(
    state: CliState,
    feature: str,
    trial_id: str,
    fmt: Literal["md", "html", "json"],
    out: Path | None,
    gateway: str | None,
    api_key: str | None,
) -> None:
    """Which road FEATURE should take: each road of a trial against the requirements its
    policy declares, the framework's rules, the ROI at the declared volume, a recommendation."""
    from trivium.trials.report.decision import render_decision, write_decision

    decision = with_gateway(state, gateway, api_key, lambda c: c.decision(feature, trial_id))
    if out is None:
        click.echo(render_decision(decision, fmt))
        return
    for path in write_decision(decision, fmt, out):
        click.echo(str(path))
