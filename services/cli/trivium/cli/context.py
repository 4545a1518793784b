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

from trivium.cli.stack import StackState, find_running_stack, read_live_state
from trivium.common.errors import TriviumError
from trivium.common.redis import open_redis
from trivium.common.redis_server import EmbeddedRedis
from trivium.common.settings import TriviumSettings, load_settings
from trivium.registry import TEMPLATE_KIND, Registry

__all__ = (
    "CliState",
    "fail",
    "find_stack_store",
    "open_templates",
    "print_json",
    "run_async",
    "with_templates",
)

T = TypeVar("T")
S = TypeVar("S", bound=TriviumSettings)


class CliState:
    def __init__(self, config_file: Path | None, data_dir: Path | None = None) -> None:
        self.config_file = config_file
        self.data_dir = data_dir
        """`--data-dir`: wins over TRIVIUM_DATA_DIR and the config file."""

    def settings(self, settings_cls: type[S]) -> S:
        overrides: dict[str, Any] = {} if self.data_dir is None else {"data_dir": self.data_dir}
        try:
            return load_settings(settings_cls, self.config_file, **overrides)
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


def _note(message: str) -> None:
    click.secho(f"trivium: {message}", fg="yellow", err=True)


def _on_stack(settings: S, stack: StackState) -> S:
    redis = settings.redis.model_copy(update={"url": stack.redis_url})
    return settings.model_copy(update={"redis": redis, "data_dir": Path(stack.data_dir)})


def find_stack_store(settings: S) -> S:
    """`settings` pointed at the store of the running stack, for a command that uses the
    registry: a configured `redis.url` as is; else the stack whose state file is in the data
    directory; else, when no data directory was chosen (`--data-dir`, TRIVIUM_DATA_DIR, the
    config file), a stack running from `var/` in the current directory's parents. Failing
    those, the command starts a fresh embedded Redis under the data directory, and says so."""
    if settings.redis.url is not None:
        return settings
    data_dir = settings.data_dir.resolve()
    stack = read_live_state(data_dir)
    if stack is not None:
        return _on_stack(settings, stack)
    if "data_dir" not in settings.model_fields_set:
        stack = find_running_stack(Path.cwd().parent, settings.data_dir.name)
        if stack is not None:
            _note(f"using the stack `trivium up` runs from {stack.data_dir} (pid {stack.pid})")
            return _on_stack(settings, stack)
    if not EmbeddedRedis(data_dir).running():
        _note(
            f"no running stack uses {data_dir} (no live {data_dir.name}/stack.json); starting a "
            f"fresh embedded Redis under {data_dir / 'redis'} for this command. To reach the "
            "stack `trivium up` runs, pass --data-dir DIR or set TRIVIUM_DATA_DIR."
        )
    return settings


@asynccontextmanager
async def open_templates(settings: TriviumSettings) -> AsyncIterator[Registry]:
    """A template registry on the configured Redis (or the embedded one), without a cache."""
    async with open_redis(settings.redis, settings.data_dir) as client:
        yield Registry(client, TEMPLATE_KIND, settings.registry, cache=False)


def with_templates(state: CliState, action: Callable[[Registry], Awaitable[T]]) -> T:
    async def main() -> T:
        settings = find_stack_store(state.settings(TriviumSettings))
        async with open_templates(settings) as registry:
            return await action(registry)

    return run_async(main())


def print_json(value: object) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))
