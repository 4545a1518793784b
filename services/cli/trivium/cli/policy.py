"""`trivium policy check|diff|show|schema`: the routing policy, before and after it is saved."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import click
import msgspec

from trivium.cli.context import CliState, fail, print_json, run_async
from trivium.cli.policy_output import (
    FileResult,
    print_check,
    print_diff,
    print_errors,
    print_policy,
)
from trivium.common.redis import open_redis
from trivium.common.settings import TriviumSettings
from trivium.gateway.config import GatewaySettings
from trivium.gateway.policy import (
    InvalidPolicyError,
    Policy,
    check_policy_file,
    check_references,
    diff_policies,
    invalid_report,
    load_policy_file,
    policy_hash,
    policy_schema_text,
)
from trivium.gateway.policy.references import CollectionLookup, ReferenceLookup
from trivium.gateway.policy.routes import PolicyView
from trivium.registry import TEMPLATE_KIND, ReadOnlyKind, Registry

__all__ = ("policy",)

pass_state = click.make_pass_decorator(CliState)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
policy_path = click.Path(dir_okay=False, path_type=Path)


@click.group()
def policy() -> None:
    """The routing policy: check a file before saving it, see what a change does to traffic,
    show the active one, export its JSON Schema for editors."""


@policy.command()
@click.argument("files", nargs=-1, required=True, type=policy_path)
@click.option(
    "--registry",
    "with_registry",
    is_flag=True,
    help="Also check that every template and adapter reference resolves in the registry "
    "(the configured Redis, else the embedded one).",
)
@click.option(
    "--retriever",
    "retriever_url",
    metavar="URL",
    default=None,
    help="Also check that every retrieval collection exists in the retriever at URL "
    "(token: TRIVIUM_RETRIEVER_TOKEN).",
)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@json_option
@pass_state
def check(
    state: CliState,
    files: tuple[Path, ...],
    with_registry: bool,
    retriever_url: str | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Check each policy FILE as the gateway would load it: every error and warning with its
    path. Exit 1 when a file has errors (with --strict: or warnings), else 0."""
    settings = state.settings(TriviumSettings) if with_registry else None
    results = run_async(_check_all(files, settings, retriever_url))
    if as_json:
        print_json([{"file": r.file, **msgspec.structs.asdict(r.report)} for r in results])
    else:
        print_check(results)
    failed = any(not r.report.valid or (strict and r.report.warnings) for r in results)
    raise SystemExit(1 if failed else 0)


async def _check_all(
    files: Sequence[Path], settings: TriviumSettings | None, retriever_url: str | None
) -> list[FileResult]:
    async with AsyncExitStack() as stack:
        templates: ReferenceLookup | None = None
        adapters: ReferenceLookup | None = None
        collections: CollectionLookup | None = None
        if settings is not None:
            client = await stack.enter_async_context(open_redis(settings.redis, settings.data_dir))
            templates = Registry(client, TEMPLATE_KIND, settings.registry, cache=False)
            adapters = Registry(client, ReadOnlyKind("adapter"), settings.registry, cache=False)
        if retriever_url is not None:
            from trivium.gateway.clients.retriever import RetrieverClient  # aiohttp: when used

            token = os.environ.get("TRIVIUM_RETRIEVER_TOKEN")
            collections = await stack.enter_async_context(
                RetrieverClient(retriever_url, token=token)
            )
        results = []
        for path in files:
            try:
                checked = check_policy_file(path)
            except InvalidPolicyError as exc:
                results.append(FileResult(str(path), invalid_report(exc)))
                continue
            missing = await check_references(
                checked.policy, templates=templates, adapters=adapters, collections=collections
            )
            results.append(FileResult(str(path), checked.report(missing)))
        return results


@policy.command()
@click.argument("old", type=policy_path)
@click.argument("new", type=policy_path)
@json_option
def diff(old: Path, new: Path, as_json: bool) -> None:
    """What NEW changes for traffic compared with OLD, per feature: roads, the share of users
    that move to another arm, fallbacks, shadows, template and adapter references."""
    changes = diff_policies(_load(old), _load(new))
    if as_json:
        print_json(changes)
    else:
        print_diff(changes)


def _load(path: Path) -> Policy:
    try:
        return load_policy_file(path)
    except InvalidPolicyError as exc:
        print_errors(str(path), exc.issues)
        raise SystemExit(1) from exc


@policy.command()
@click.option(
    "--live",
    "live_url",
    metavar="URL",
    default=None,
    help="Ask the gateway at URL (GET /v1/policy) instead of reading gateway.policy_file.",
)
@json_option
@pass_state
def show(state: CliState, live_url: str | None, as_json: bool) -> None:
    """The active policy, its hash and when it was loaded: the gateway's (--live URL), else
    the configured file's (gateway.policy_file) as the gateway would load it now."""
    view = _live_view(live_url) if live_url is not None else _file_view(state)
    if as_json:
        print_json(view)
    else:
        print_policy(view, live=live_url is not None)


def _file_view(state: CliState) -> PolicyView:
    path = state.settings(GatewaySettings).gateway.policy_file
    if path is None:
        fail("no policy file is configured (gateway.policy_file); use --live URL for a gateway's")
    loaded = _load(path)
    return PolicyView(
        version=loaded.version,
        hash=policy_hash(loaded),
        loaded_at=time.time(),
        source=str(path),
        features=loaded.features,
        upstreams=loaded.upstreams,
    )


def _live_view(url: str) -> PolicyView:
    address = f"{url.rstrip('/')}/v1/policy"
    try:
        with urllib.request.urlopen(address, timeout=10) as response:  # noqa: S310 (user's URL)
            payload = response.read()
    except urllib.error.HTTPError as exc:
        fail(f"gateway at {url} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}")
    except (urllib.error.URLError, OSError) as exc:
        fail(f"gateway at {url} unreachable: {exc}")
    try:
        return msgspec.json.decode(payload, type=PolicyView)
    except msgspec.DecodeError as exc:
        fail(f"unexpected answer from {address}: {exc}")


@policy.command()
def schema() -> None:
    """Print the policy file's JSON Schema (for editors; shipped as deploy/policy.schema.json)."""
    click.echo(policy_schema_text(), nl=False)
