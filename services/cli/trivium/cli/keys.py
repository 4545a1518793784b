"""`trivium keys ...`: create, list, show, rotate and revoke caller API keys.

Like `trivium templates`, the commands write to the store of the running stack (or the
configured Redis) directly, with the gateway's pepper (`gateway.auth.pepper`, else the one in
the data directory), and each change is audited with `--actor`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
import msgspec

from trivium.cli.context import CliState, find_stack_store, print_json, run_async
from trivium.common.redis import open_redis
from trivium.gateway.callers import SCOPES, KeySpec, KeyStore, KeyView, load_pepper
from trivium.gateway.callers.routes import CreateKeyRequest
from trivium.gateway.config import GatewaySettings
from trivium.registry.store import default_actor

__all__ = ("keys",)

T = TypeVar("T")
pass_state = click.make_pass_decorator(CliState)
actor_option = click.option(
    "--actor",
    default=default_actor,
    show_default="user@host",
    help="Who to record in the audit log.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def with_keys(state: CliState, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def main() -> T:
        settings = find_stack_store(state.settings(GatewaySettings))
        pepper = load_pepper(settings.gateway.auth.pepper, settings.data_dir)
        async with open_redis(settings.redis, settings.data_dir) as client:
            return await action(KeyStore(client, settings.registry.key_prefix, pepper))

    return run_async(main())


@click.group()
def keys() -> None:
    """Caller API keys (trv_...): who may call which features, at what rate and budget."""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@keys.command()
@click.option("--name", required=True, help="Key name: the metrics label (a-z, 0-9, -).")
@click.option("--owner", default=None, help="Who answers for the key (default: the actor).")
@click.option("--features", required=True, help="Comma-separated feature names, or '*'.")
@click.option(
    "--scopes",
    default="invoke",
    show_default=True,
    help=f"Comma-separated scopes: {', '.join(SCOPES)}.",
)
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, help="Tokens per minute.")
@click.option("--budget-usd-day", type=click.FloatRange(min=0), default=None)
@click.option("--budget-usd-month", type=click.FloatRange(min=0), default=None)
@click.option("--expires-in-days", type=click.FloatRange(min=0, min_open=True), default=None)
@actor_option
@json_option
@pass_state
def create(
    state: CliState,
    name: str,
    owner: str | None,
    features: str,
    scopes: str,
    rpm: int | None,
    tpm: int | None,
    budget_usd_day: float | None,
    budget_usd_month: float | None,
    expires_in_days: float | None,
    actor: str,
    as_json: bool,
) -> None:
    """Create a key; the full key is printed once and cannot be shown again."""

    try:
        request = msgspec.convert(
            {
                "name": name,
                "owner": owner or actor,
                "features": list(_csv(features)),
                "scopes": list(_csv(scopes)),
                "rpm": rpm,
                "tpm": tpm,
                "budget_usd_day": budget_usd_day,
                "budget_usd_month": budget_usd_month,
                "expires_at": None
                if expires_in_days is None
                else dt.datetime.now(dt.UTC).timestamp() + expires_in_days * 86_400,
            },
            CreateKeyRequest,
        )
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc
    spec: KeySpec = request.spec()
    created = with_keys(state, lambda store: store.create(spec, actor))
    if as_json:
        print_json({"key": created.key, "record": created.record.view()})
        return
    click.echo(created.key)
    click.echo(
        f"created key {created.record.id} ({name}); this is the only time the key is shown",
        err=True,
    )


@keys.command("list")
@json_option
@pass_state
def list_keys(state: CliState, as_json: bool) -> None:
    """Every key, without secrets."""
    records = with_keys(state, lambda store: store.all())
    views = [r.view() for r in records]
    if as_json:
        print_json(views)
        return
    for view in views:
        click.echo(_line(view))


def _line(view: KeyView) -> str:
    limits = ", ".join(
        f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}"
        for label, value in (
            ("rpm", view.rpm),
            ("tpm", view.tpm),
            ("$/day", view.budget_usd_day),
            ("$/month", view.budget_usd_month),
        )
        if value is not None
    )
    return (
        f"{view.id}  {view.name:<24} {view.status:<8} features={','.join(view.features)} "
        f"scopes={','.join(view.scopes)} {limits}"
    ).rstrip()


@keys.command()
@click.argument("key_id")
@pass_state
def show(state: CliState, key_id: str) -> None:
    """One key and its audit log, as JSON."""

    async def read(store: KeyStore) -> dict[str, object]:
        return {"key": (await store.get(key_id)).view(), "history": await store.history(key_id)}

    print_json(with_keys(state, read))


@keys.command()
@click.argument("key_id")
@actor_option
@pass_state
def rotate(state: CliState, key_id: str, actor: str) -> None:
    """A new secret for KEY_ID (printed once); the old key is refused at once."""
    created = with_keys(state, lambda store: store.rotate(key_id, actor))
    click.echo(created.key)
    click.echo(f"rotated key {key_id}; this is the only time the new key is shown", err=True)


@keys.command()
@click.argument("key_id")
@actor_option
@pass_state
def revoke(state: CliState, key_id: str, actor: str) -> None:
    """Refuse KEY_ID from now on, on every gateway replica within a second."""
    record = with_keys(state, lambda store: store.revoke(key_id, actor))
    click.echo(f"revoked key {record.id} ({record.name})")
