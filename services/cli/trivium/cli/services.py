"""`trivium gateway|model ...`: run a service or print its effective settings."""

from __future__ import annotations

from pathlib import Path

import click

from trivium.cli.context import CliState, find_stack_store, print_json, run_async
from trivium.common.http.exposure import InsecureExposureError
from trivium.common.settings import TriviumSettings
from trivium.gateway.config import GatewaySettings
from trivium.model.config import ModelSettings

__all__ = ("gateway", "model")

pass_state = click.make_pass_decorator(CliState)


def _print_settings(settings: TriviumSettings) -> None:
    print_json(settings.model_dump(mode="json", exclude={"config_file"}))


@click.group()
def gateway() -> None:
    """The gateway: REST and OpenAI-compatible API, policy routing, registry admin."""


@gateway.command("serve")
@pass_state
def gateway_serve(state: CliState) -> None:
    """Serve the gateway (embedded Redis unless redis.url is set)."""
    from trivium.gateway.policy.errors import InvalidPolicyError
    from trivium.gateway.server import serve

    try:
        serve(state.settings(GatewaySettings))
    except (InvalidPolicyError, InsecureExposureError) as exc:
        raise click.ClickException(f"gateway cannot start: {exc.message}") from exc


@gateway.command("config")
@pass_state
def gateway_config(state: CliState) -> None:
    """Print the gateway's effective settings (file + environment + defaults)."""
    _print_settings(state.settings(GatewaySettings))


@click.group()
def model() -> None:
    """The model service: OpenAI-compatible serving of a base model and LoRA adapters."""


@model.command("serve")
@pass_state
def model_serve(state: CliState) -> None:
    """Serve the OpenAI-compatible API on the configured engine."""
    from trivium.model.server import serve  # imported late: `--help` must not load torch

    try:
        serve(state.settings(ModelSettings))
    except InsecureExposureError as exc:
        raise click.ClickException(f"model service cannot start: {exc.message}") from exc


@model.command("init-demo")
@pass_state
def model_init_demo(state: CliState) -> None:
    """Build the offline demo model and fine-tune its triage adapter (skips what exists).

    No weights can be downloaded, so the demo base is a small GPT-2-style model trained here
    from text shipped in the package, and `triage-lora` is a LoRA adapter fine-tuned on a
    shipped ticket-triage dataset, registered and labelled `production`.
    """
    from trivium.model.demo import run_init_demo  # imported late: loads torch

    report = run_async(run_init_demo(state.settings(ModelSettings)))
    click.echo(report.summary())


@model.command("finetune")
@click.option(
    "--base",
    "base",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Base model directory (default: model.transformers.base_model_dir).",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL of {"prompt", "completion"} or chat {"messages"} records.',
)
@click.option("--name", required=True, help="Adapter name to register the new version under.")
@click.option("--promote", "label", default=None, help="Point this label at the new version.")
@click.option("--rank", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--eval-fraction", type=click.FloatRange(0, 0.9), default=0.2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@pass_state
def model_finetune(
    state: CliState,
    base: Path | None,
    data: Path,
    name: str,
    label: str | None,
    rank: int,
    epochs: int | None,
    lr: float | None,
    eval_fraction: float,
    seed: int,
) -> None:
    """Quick PEFT LoRA fine-tune: train, evaluate against the base, register a version."""
    from trivium.model.finetune import run_finetune_command  # imported late: loads torch
    from trivium.model.finetune.train import DEFAULT_EPOCHS, DEFAULT_LR

    settings = find_stack_store(state.settings(ModelSettings))
    report = run_async(
        run_finetune_command(
            settings,
            base or settings.base_model_dir,
            data,
            name,
            label,
            rank=rank,
            alpha=2 * rank,
            epochs=epochs or DEFAULT_EPOCHS,
            lr=lr or DEFAULT_LR,
            eval_fraction=eval_fraction,
            seed=seed,
        )
    )
    click.echo(report.summary())


@model.command("config")
@pass_state
def model_config(state: CliState) -> None:
    """Print the model service's effective settings (file + environment + defaults)."""
    _print_settings(state.settings(ModelSettings))
