"""The `trivium` entry point."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from trivium.cli.context import CliState

__all__ = ("cli",)

COMMANDS = {
    "up": "trivium.cli.up:up",
    "templates": "trivium.cli.templates:templates",
    "datasets": "trivium.cli.datasets:datasets",
    "keys": "trivium.cli.keys:keys",
    "policy": "trivium.cli.policy:policy",
    "gateway": "trivium.cli.services:gateway",
    "retriever": "trivium.cli.retriever:retriever",
    "model": "trivium.cli.services:model",
    "trial": "trivium.cli.trials:trial",
    "decide": "trivium.cli.decide:decide",
    "demo": "trivium.cli.demo_examples:demo",
    "rollouts": "trivium.cli.rollouts:rollouts",
    "reviews": "trivium.cli.reviews:reviews",
    "drift": "trivium.cli.drift:drift",
}
"""Each command group is imported when it is run: `trivium retriever serve` must not load the
gateway's modules, whose metrics would then show on the retriever's /metrics."""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="TRIVIUM_CONFIG",
    help="YAML config file (env: TRIVIUM_CONFIG). TRIVIUM_* variables override it.",
)
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (env: TRIVIUM_DATA_DIR; default var): the embedded Redis, models, "
    "and the running stack's stack.json, which registry commands connect through.",
)
@click.version_option(package_name="trivium")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, data_dir: Path | None) -> None:
    """Trivium: prompt templates, RAG and fine-tuned adapters behind one measured gateway."""
    ctx.obj = CliState(config_file, data_dir)


if __name__ == "__main__":
    cli()
