"""What every command shares: the config file, error reporting, the registry connection."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import msgspec
from pydantic import ValidationError

from trivium.common.errors import TriviumError
from trivium.common.redis import open_redis
from trivium.common.settings import TriviumSettings, load_settings
from trivium.registry import TEMPLATE_KIND, Registry

__all__ = ("CliState", "fail", "open_templates", "print_json", "run_async", "with_templates")

T = TypeVar("T")
S = TypeVar("S", bound=TriviumSettings)


class CliState:
    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file

    def settings(self, settings_cls: type[S]) -> S:
        try:
            return load_settings(settings_cls, self.config_file)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            fail(f"invalid configuration: {problems}")
        except TriviumError as exc:
            fail(exc.message)


def fail(message: str, code: int = 1) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; registry errors become one clear line and exit status 1."""
    try:
        return asyncio.run(coroutine)
    except TriviumError as exc:
        field = f" [{exc.field}]" if exc.field else ""
        fail(f"{exc.message}{field}")


@asynccontextmanager
async def open_templates(settings: TriviumSettings) -> AsyncIterator[Registry]:
    """A template registry on the configured Redis (or the embedded one), without a cache."""
    async with open_redis(settings.redis, settings.data_dir) as client:
        yield Registry(client, TEMPLATE_KIND, settings.registry, cache=False)


def with_templates(state: CliState, action: Callable[[Registry], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_templates(state.settings(TriviumSettings)) as registry:
            return await action(registry)

    return run_async(main())


def print_json(value: object) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))
