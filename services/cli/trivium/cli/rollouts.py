"""`trivium rollouts ...`: the canary rollouts of a gateway's active policy.

Every command talks to a gateway over HTTP: `--gateway URL`, else the running stack's (its
stack.json), with the key of `--api-key` / TRIVIUM_KEY, else the stack's demo key file.
Reading needs scope `read`; pause, resume and abort need `policy:reload`.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from trivium.cli.context import CliState, fail, print_json
from trivium.cli.trials import connection, gateway_option, key_option
from trivium.gateway.rollouts.schemas import RolloutList, RolloutView

__all__ = ("rollouts",)

pass_state = click.make_pass_decorator(CliState)


def _options(command: Any) -> Any:
    """--gateway and --api-key as every gateway client command takes them, and --json."""
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    return gateway_option(key_option(command))


@click.group()
def rollouts() -> None:
    """Canary rollouts: steps, guards against the control, automatic rollback."""


@rollouts.command("list")
@_options
@pass_state
def list_rollouts(state: CliState, gateway: str | None, api_key: str | None, as_json: bool) -> None:
    """Every rollout of the active policy, and the replica driving them."""
    found = msgspec.json.decode(
        _call(state, gateway, api_key, "GET", "/v1/rollouts"), type=RolloutList
    )
    if as_json:
        print_json(found)
        return
    table = Table(title=f"rollouts (lease: {_lease(found)})")
    for column in ("feature", "variant", "status", "step", "percent", "control", "last event"):
        table.add_column(column)
    for r in found.rollouts:
        last = r.history[-1] if r.history else None
        table.add_row(
            r.feature,
            r.variant,
            r.status,
            f"{r.step}/{len(r.steps)}",
            f"{r.percent:g}%",
            r.control,
            f"{last.outcome}: {last.reason}" if last else "",
        )
    Console().print(table)


@rollouts.command()
@click.argument("feature")
@click.argument("variant")
@_options
@pass_state
def show(
    state: CliState,
    feature: str,
    variant: str,
    gateway: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """One rollout: its step, effective weights and history with the guards' numbers."""
    path = f"/v1/rollouts/{feature}/{variant}"
    _print(_call(state, gateway, api_key, "GET", path), as_json)


def _action(name: str, doc: str) -> None:
    @rollouts.command(name=name, help=doc)
    @click.argument("feature")
    @click.argument("variant")
    @_options
    @pass_state
    def act(
        state: CliState,
        feature: str,
        variant: str,
        gateway: str | None,
        api_key: str | None,
        as_json: bool,
    ) -> None:
        path = f"/v1/rollouts/{feature}/{variant}/{name}"
        _print(_call(state, gateway, api_key, "POST", path), as_json)


_action("pause", "Hold a rollout at its step (its guards still roll it back).")
_action("resume", "Let a paused rollout advance again.")
_action("abort", "End a rollout now: its variant's weight goes to 0.")


def _print(payload: bytes, as_json: bool) -> None:
    view = msgspec.json.decode(payload, type=RolloutView)
    if as_json:
        print_json(view)
        return
    console = Console()
    console.print(
        f"[bold]{view.feature}/{view.variant}[/bold]  {view.status}  step {view.step}/"
        f"{len(view.steps)} ({view.percent:g}%)  control {view.control}  id {view.id}"
    )
    console.print(f"weights: {view.effective_weights.why}")
    for name, share in view.effective_weights.shares.items():
        console.print(f"  {name}: {share * 100:.1f}%")
    for event in view.history:
        when = dt.datetime.fromtimestamp(event.at, dt.UTC).strftime("%H:%M:%S")
        console.print(
            f"  {when} {event.outcome:<11} step {event.step} ({event.percent:g}%) "
            f"token {event.token}: {event.reason}",
            markup=False,
        )


def _lease(found: RolloutList) -> str:
    return "none" if found.lease is None else f"{found.lease.holder} #{found.lease.token}"


def _call(
    state: CliState, gateway: str | None, api_key: str | None, method: str, path: str
) -> bytes:
    url, key = connection(state, gateway, api_key)
    request = urllib.request.Request(f"{url.rstrip('/')}{path}", method=method)  # noqa: S310
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (user's URL)
            payload: bytes = response.read()
            return payload
    except urllib.error.HTTPError as exc:
        body = exc.read()[:2000].decode(errors="replace")
        try:
            problem = json.loads(body)
            detail = problem.get("detail") or problem.get("title")
            fail(f"{detail} [{exc.code} {problem.get('code')}]")
        except (ValueError, AttributeError):
            fail(f"gateway at {url} answered {exc.code}: {body[:300]}")
    except (urllib.error.URLError, OSError) as exc:
        fail(f"gateway at {url} unreachable: {exc}")
