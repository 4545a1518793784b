"""The `trivium` entry point."""

from __future__ import annotations

from pathlib import Path

import click

from trivium.cli.context import CliState
from trivium.cli.keys import keys
from trivium.cli.policy import policy
from trivium.cli.retriever import retriever
from trivium.cli.services import gateway, model
from trivium.cli.templates import templates
from trivium.cli.up import up

__all__ = ("cli",)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


cli.add_command(up)
cli.add_command(templates)
cli.add_command(keys)
cli.add_command(policy)
cli.add_command(gateway)
cli.add_command(retriever)
cli.add_command(model)

if __name__ == "__main__":
    cli()
