"""`trivium up`: the whole stack on embedded defaults, as one command."""

from __future__ import annotations

import signal
import sys
from importlib import resources
from pathlib import Path
from types import FrameType

import click

from trivium.cli.context import CliState, open_templates, run_async
from trivium.cli.demo import seed_demo_templates
from trivium.cli.supervisor import Child, Supervisor
from trivium.common.redis_server import EmbeddedRedis
from trivium.gateway.config import GatewaySettings, RetrieverClientSection
from trivium.model.config import ModelSettings
from trivium.retriever.config import RetrieverSettings

__all__ = ("up",)


class _StopRequested(Exception):  # noqa: N818 - a request, not an error
    """Ctrl-C or SIGTERM arrived while the stack was still starting."""


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signum)


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a comparison


DEMO_KNOWLEDGE = ("README.md", "docs")


def _ingest_demo_knowledge(base_url: str) -> str:
    """The project's own docs as the demo knowledge base (collection `docs`), idempotently."""
    from trivium.cli.retriever import IngestSummary, ingest_paths
    from trivium.gateway.clients.retriever import RetrieverClient
    from trivium.retriever.indexing.sources import expand_paths, read_documents

    paths = [Path(p) for p in DEMO_KNOWLEDGE if Path(p).exists()]
    if not paths:
        return "no README.md or docs/ here; the docs collection stays empty"
    documents = [doc for path, root in expand_paths(paths) for doc in read_documents(path, root)]

    async def ingest() -> IngestSummary:
        async with RetrieverClient(base_url) as client:
            return await ingest_paths(client, "docs", documents, batch_size=64, delete_missing=True)

    return f"docs: {run_async(ingest()).line()}"


def _write_demo_policy(data_dir: Path, model_url: str) -> Path:
    """The shipped demo policy, pointed at this run's model service, under data_dir."""
    text = resources.files("trivium.cli").joinpath("demo_policy.yaml").read_text("utf-8")
    path = data_dir / "demo-policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.format(model_url=model_url), encoding="utf-8")
    return path


def _try_it(gateway_url: str) -> str:
    calls = (
        (
            "marketing-copy",
            '{"input": {"product": "a solar kettle", "audience": "campers", "tone": "playful"}}',
        ),
        ("docs-qa", '{"input": {"question": "How does the gateway pick a road?"}}'),
        ("ticket-triage", '{"input": {"ticket": "I was charged twice this month"}}'),
    )
    lines = ["try one road each:"]
    for feature, body in calls:
        lines.append(
            f"  curl -s {gateway_url}/v1/features/{feature}/invoke "
            f"-H 'content-type: application/json' -d '{body}'"
        )
    return "\n".join(lines)


@click.command()
@click.option("--skip-model", is_flag=True, help="Run without the model service.")
@click.option("--skip-retriever", is_flag=True, help="Run without the retriever.")
@click.pass_obj
def up(state: CliState, skip_model: bool, skip_retriever: bool) -> None:
    """Run the stack on embedded defaults: Redis, Qdrant's engine, the retriever, the model
    service and the gateway.

    With no Redis URL configured, a real redis-server runs under data_dir. The first run
    builds the offline demo model and its triage adapter (`trivium model init-demo`); the
    retriever ingests this project's README.md and docs/ into the collection `docs`.
    Ctrl-C stops everything cleanly.
    """
    # Ctrl-C or SIGTERM while starting up must still stop what was started, cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_requested)
    gateway = state.settings(GatewaySettings)
    model = state.settings(ModelSettings)
    embedded = EmbeddedRedis(gateway.data_dir) if gateway.redis.url is None else None
    supervisor = Supervisor(state.config_file)
    status = 1
    try:
        if embedded is not None:
            embedded.start()

        async def seed() -> list[str]:
            async with open_templates(gateway) as registry:
                return await seed_demo_templates(registry)

        click.echo(f"templates: {', '.join(run_async(seed()))}", err=True)
        model_url = f"http://{_local(model.model.host)}:{model.model.port}"
        retriever_section = state.settings(RetrieverSettings).retriever
        retriever_url = f"http://{_local(retriever_section.host)}:{retriever_section.port}"
        if gateway.gateway.policy_file is None:
            policy_file = _write_demo_policy(gateway.data_dir, model_url)
            supervisor.set_env("TRIVIUM_GATEWAY__POLICY_FILE", str(policy_file))
            click.echo(f"policy: {policy_file} (the demo policy; edit it live)", err=True)
        if gateway.gateway.retriever.url == RetrieverClientSection().url:
            supervisor.set_env("TRIVIUM_GATEWAY__RETRIEVER__URL", retriever_url)
        if not skip_model:
            from trivium.model.demo import run_init_demo  # imported late: loads torch

            report = run_async(run_init_demo(model))
            click.echo(f"model: {report.summary()}", err=True)
            supervisor.start(Child("model service", ["model", "serve"], f"{model_url}/readyz"))
            click.echo(f"model service: {model_url}/v1 (OpenAI API)", err=True)
        if not skip_retriever:
            supervisor.start(Child("retriever", ["retriever", "serve"], f"{retriever_url}/readyz"))
            click.echo(_ingest_demo_knowledge(retriever_url), err=True)
            click.echo(f"retriever: {retriever_url}/v1/collections", err=True)
        gateway_url = f"http://{_local(gateway.gateway.host)}:{gateway.gateway.port}"
        supervisor.start(Child("gateway", ["gateway", "serve"], f"{gateway_url}/readyz"))
        click.echo(f"gateway: {gateway_url} (OpenAPI at /schema); Ctrl-C stops", err=True)
        click.echo(_try_it(gateway_url), err=True)
        status = supervisor.wait()
    except _StopRequested:
        status = 0
    finally:
        supervisor.stop_all()
        if embedded is not None:
            embedded.stop()
    sys.exit(status)
