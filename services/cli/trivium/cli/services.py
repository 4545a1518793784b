"""`trivium gateway|retriever|model ...`: run a service or print its effective settings."""

from __future__ import annotations

import click

from trivium.cli.context import CliState, print_json
from trivium.common.settings import TriviumSettings
from trivium.gateway.config import GatewaySettings
from trivium.model.config import ModelSettings
from trivium.retriever.config import RetrieverSettings

__all__ = ("gateway", "model", "retriever")

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
    from trivium.gateway.server import serve

    serve(state.settings(GatewaySettings))


@gateway.command("config")
@pass_state
def gateway_config(state: CliState) -> None:
    """Print the gateway's effective settings (file + environment + defaults)."""
    _print_settings(state.settings(GatewaySettings))


@click.group()
def retriever() -> None:
    """The retriever: ingest, hybrid search and re-ranking over Qdrant."""


@retriever.command("config")
@pass_state
def retriever_config(state: CliState) -> None:
    """Print the retriever's effective settings (file + environment + defaults)."""
    _print_settings(state.settings(RetrieverSettings))


@click.group()
def model() -> None:
    """The model service: OpenAI-compatible serving of a base model and LoRA adapters."""


@model.command("serve")
@pass_state
def model_serve(state: CliState) -> None:
    """Serve the OpenAI-compatible API on the configured engine."""
    from trivium.model.server import serve  # imported late: `--help` must not load torch

    serve(state.settings(ModelSettings))


@model.command("config")
@pass_state
def model_config(state: CliState) -> None:
    """Print the model service's effective settings (file + environment + defaults)."""
    _print_settings(state.settings(ModelSettings))
