"""The `trivium` entry point."""

from __future__ import annotations

from pathlib import Path

import click

from trivium.cli.context import CliState, open_templates, run_async
from trivium.cli.demo import seed_demo_templates
from trivium.cli.services import gateway, model, retriever
from trivium.cli.templates import templates
from trivium.common.redis_server import EmbeddedRedis
from trivium.gateway.config import GatewaySettings

__all__ = ("cli",)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="TRIVIUM_CONFIG",
    help="YAML config file (env: TRIVIUM_CONFIG). TRIVIUM_* variables override it.",
)
@click.version_option(package_name="trivium")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Trivium: prompt templates, RAG and fine-tuned adapters behind one measured gateway."""
    ctx.obj = CliState(config_file)


@cli.command()
@click.pass_obj
def up(state: CliState) -> None:
    """Run the stack on embedded defaults: Redis under data_dir, demo templates, the gateway."""
    settings = state.settings(GatewaySettings)
    embedded = EmbeddedRedis(settings.data_dir) if settings.redis.url is None else None
    if embedded is not None:
        embedded.start()
    try:

        async def seed() -> list[str]:
            async with open_templates(settings) as registry:
                return await seed_demo_templates(registry)

        seeded = run_async(seed())
        click.echo(f"templates: {', '.join(seeded)}", err=True)
        click.echo(
            f"gateway: http://{settings.gateway.host}:{settings.gateway.port} "
            "(OpenAPI at /schema, metrics at /metrics); Ctrl-C stops",
            err=True,
        )
        from trivium.gateway.server import serve

        serve(settings)
    finally:
        if embedded is not None:
            embedded.stop()


cli.add_command(templates)
cli.add_command(gateway)
cli.add_command(retriever)
cli.add_command(model)

if __name__ == "__main__":
    cli()
