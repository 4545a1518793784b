"""`trivium up`: the whole stack on embedded defaults, as one command."""

from __future__ import annotations

import os
import signal
import socket
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import FrameType

import click
import msgspec

from trivium.cli.config import UpSection, UpSettings
from trivium.cli.context import CliState, fail, open_templates, run_async
from trivium.cli.demo import seed_demo_templates
from trivium.cli.demo_examples import ingest_triage_examples, publish_demo_datasets
from trivium.cli.demo_key import demo_key_file, ensure_demo_key
from trivium.cli.demo_reranker import demo_reranker_env
from trivium.cli.progress import Progress
from trivium.cli.stack import STATE_FILE, StackState, read_live_state, remove_state
from trivium.cli.supervisor import Backoff, Child, RedisUnit, Supervisor
from trivium.cli.supervisor_metrics import SupervisorMetrics
from trivium.common.logs import configure_logging
from trivium.common.redis import open_redis
from trivium.common.redis_server import EmbeddedRedis
from trivium.gateway.callers import KeyStore, load_pepper
from trivium.gateway.config import GatewaySettings, RetrieverClientSection
from trivium.model.config import ModelSettings
from trivium.retriever.config import RetrieverSettings

__all__ = ("up",)


class _StopRequested(Exception):  # noqa: N818 - a request, not an error
    """Ctrl-C or SIGTERM arrived while the stack was still starting."""


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signum)


def _port_taken(host: str, port: int) -> bool:
    """Whether something already answers on host:port (another stack, a stray process)."""
    try:
        with socket.create_connection((_local(host), port), timeout=0.5):
            return True
    except OSError:
        return False


def busy_ports(wanted: dict[str, tuple[str, int]]) -> list[str]:
    """The settings whose port another process holds, e.g. `retriever.port 8200`: `up` would
    otherwise find that process healthy and take it for its own child."""
    return [
        f"{setting} {port}" for setting, (host, port) in wanted.items() if _port_taken(host, port)
    ]


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


def _try_it(gateway_url: str, key: str | None) -> str:
    calls = (
        (
            "marketing-copy",
            '{"input": {"product": "a solar kettle", "audience": "campers", "tone": "playful"}}',
        ),
        ("docs-qa", '{"input": {"question": "How does the gateway pick a road?"}}'),
        ("ticket-triage", '{"input": {"ticket": "I was charged twice this month"}}'),
    )
    lines = []
    auth = ""
    if key is not None:
        lines += [
            "the demo API key (invoke, read, trials, feedback; every feature):",
            f"  export TRIVIUM_KEY={key}",
        ]
        auth = '-H "authorization: Bearer $TRIVIUM_KEY" '
    lines.append("try one road each:")
    for feature, body in calls:
        lines.append(
            f"  curl -s {gateway_url}/v1/features/{feature}/invoke {auth}"
            f"-H 'content-type: application/json' -d '{body}'"
        )
    return "\n".join(lines)


def _supervisor_for(state: CliState, section: UpSection, metrics: SupervisorMetrics) -> Supervisor:
    backoff = Backoff(
        section.restart_initial_backoff_s,
        section.restart_max_backoff_s,
        section.restart_reset_after_s,
    )
    return Supervisor(
        state.config_file, backoff=backoff, start_timeout_s=section.start_timeout_s, metrics=metrics
    )


def _child(name: str, args: list[str], base_url: str) -> Child:
    return Child(name, args, health_url=f"{base_url}/healthz", ready_url=f"{base_url}/readyz")


class _Stack:
    """The start-up phases of `trivium up`, in order, each timed on stderr."""

    def __init__(self, state: CliState, supervisor: Supervisor, metrics_url: str | None) -> None:
        self.state = state
        self.supervisor = supervisor
        self.progress = Progress()
        self.gateway = state.settings(GatewaySettings)
        self.model = state.settings(ModelSettings)
        self.up = state.settings(UpSettings).up
        self.data_dir = self.gateway.data_dir.resolve()
        self.model_url = f"http://{_local(self.model.model.host)}:{self.model.model.port}"
        retriever = state.settings(RetrieverSettings).retriever
        self.retriever_url = f"http://{_local(retriever.host)}:{retriever.port}"
        self.gateway_url = f"http://{_local(self.gateway.gateway.host)}:{self.gateway.gateway.port}"
        self.metrics_url = metrics_url
        self.demo_key: str | None = None
        supervisor.set_env("TRIVIUM_DATA_DIR", str(self.data_dir))

    def ports_in_use(self, skip_model: bool, skip_retriever: bool) -> list[str]:
        wanted = {"gateway.port": (self.gateway.gateway.host, self.gateway.gateway.port)}
        if not skip_model:
            wanted["model.port"] = (self.model.model.host, self.model.model.port)
        if not skip_retriever:
            retriever = self.state.settings(RetrieverSettings).retriever
            wanted["retriever.port"] = (retriever.host, retriever.port)
        return busy_ports(wanted)

    def start_redis(self, services: dict[str, str]) -> StackState:
        """The store (the embedded server, supervised, unless redis.url is set), the state
        file, and the demo templates."""
        with self.progress.phase("Redis") as phase:
            redis_url = self.gateway.redis.url
            if redis_url is None:
                embedded = EmbeddedRedis(self.data_dir)
                self.supervisor.start(RedisUnit(embedded))
                redis_url = embedded.url
                # Children connect to the supervised server; none starts one of its own.
                self.supervisor.set_env("TRIVIUM_REDIS__URL", redis_url)
            config_file = self.state.config_file
            stack = StackState(
                pid=os.getpid(),
                phase="starting",
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                data_dir=str(self.data_dir),
                config_file=str(config_file.resolve()) if config_file else None,
                redis_url=redis_url,
                redis_embedded=self.gateway.redis.url is None,
                services=services,
                supervisor_metrics=self.metrics_url,
            )
            stack.write()
            phase.details.append(f"redis: {redis_url}")
            settings = self.gateway.model_copy(
                update={"redis": self.gateway.redis.model_copy(update={"url": redis_url})}
            )

            async def seed() -> list[str]:
                async with open_templates(settings) as registry:
                    return await seed_demo_templates(registry)

            phase.details.append(f"templates: {', '.join(run_async(seed()))}")
            published = run_async(publish_demo_datasets(settings))
            phase.details.append(f"datasets: {', '.join(published)}")
            if self.gateway.gateway.auth.mode == "keys":
                self.demo_key = run_async(self._demo_key(settings))
                phase.details.append(f"demo key: {demo_key_file(self.data_dir)}")
        return stack

    async def _demo_key(self, settings: GatewaySettings) -> str:
        pepper = load_pepper(settings.gateway.auth.pepper, self.data_dir)
        async with open_redis(settings.redis, self.data_dir) as client:
            store = KeyStore(client, settings.registry.key_prefix, pepper)
            return await ensure_demo_key(store, self.data_dir)

    def configure_gateway(self) -> None:
        if self.gateway.gateway.policy_file is None:
            policy_file = _write_demo_policy(self.data_dir, self.model_url)
            self.supervisor.set_env("TRIVIUM_GATEWAY__POLICY_FILE", str(policy_file))
            self.progress.note(f"policy: {policy_file} (the demo policy; edit it live)")
        if self.gateway.gateway.retriever.url == RetrieverClientSection().url:
            self.supervisor.set_env("TRIVIUM_GATEWAY__RETRIEVER__URL", self.retriever_url)

    def start_model(self) -> None:
        if self.up.demo_model:
            with self.progress.phase("demo model") as phase:
                from trivium.model.demo import run_init_demo  # imported late: loads torch

                phase.details.append(run_async(run_init_demo(self.model)).summary())
        elif not (self.model.base_model_dir / "config.json").is_file():
            raise RuntimeError(
                f"up.demo_model is off and {self.model.base_model_dir} holds no model "
                "(config.json): set model.transformers.base_model_dir"
            )
        with self.progress.phase("model service") as phase:
            self.supervisor.start(_child("model", ["model", "serve"], self.model_url))
            phase.details.append(f"model service: {self.model_url}/v1 (OpenAI API)")

    def start_retriever(self) -> None:
        with self.progress.phase("retriever + ingest") as phase:
            for name, value in demo_reranker_env(self.state.settings(RetrieverSettings)).items():
                self.supervisor.set_env(name, value)
                phase.details.append(f"re-ranker: {value} (`trivium demo build-reranker`)")
            self.supervisor.start(_child("retriever", ["retriever", "serve"], self.retriever_url))
            phase.details.append(_ingest_demo_knowledge(self.retriever_url))
            phase.details.append(ingest_triage_examples(self.retriever_url))
            phase.details.append(f"retriever: {self.retriever_url}/v1/collections")

    def start_gateway(self) -> None:
        with self.progress.phase("gateway") as phase:
            self.supervisor.start(_child("gateway", ["gateway", "serve"], self.gateway_url))
            phase.details.append(f"gateway: {self.gateway_url} (OpenAPI at /schema)")

    def announce(self) -> None:
        note = self.progress.note
        note(f"ready in {self.progress.elapsed():.1f} s; Ctrl-C stops")
        if self.metrics_url is not None:
            note(f"supervisor metrics: {self.metrics_url}")
        note(f"stack state: {self.data_dir / STATE_FILE}")
        note(_try_it(self.gateway_url, self.demo_key))


@click.command()
@click.option("--skip-model", is_flag=True, help="Run without the model service.")
@click.option("--skip-retriever", is_flag=True, help="Run without the retriever.")
@click.pass_obj
def up(state: CliState, skip_model: bool, skip_retriever: bool) -> None:
    """Run the stack on embedded defaults: Redis, Qdrant's engine, the retriever, the model
    service and the gateway, and keep it running.

    With no Redis URL configured, a real redis-server runs under data_dir. The first run
    builds the offline demo model and its triage adapter (`trivium model init-demo`); the
    retriever ingests this project's README.md and docs/ into the collection `docs` and the
    training triage tickets into `triage-examples`; the dataset `triage-eval` is published.
    A process that dies (Redis included) is logged and restarted with backoff; restarts are
    counted at the supervisor's /metrics (`up.metrics_port`). `data_dir/stack.json` tells other
    `trivium` commands where the stack runs. Ctrl-C stops everything cleanly.
    """
    # Ctrl-C or SIGTERM while starting up must still stop what was started, cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_requested)
    section = state.settings(UpSettings).up
    configure_logging(state.settings(GatewaySettings).log, service="supervisor")
    metrics = SupervisorMetrics()
    metrics_url = None
    if section.metrics_port:
        try:
            metrics_url = metrics.serve(section.metrics_host, section.metrics_port)
        except OSError as exc:
            fail(f"up.metrics_port {section.metrics_port}: cannot serve the metrics: {exc}")
    supervisor = _supervisor_for(state, section, metrics)
    stack = _Stack(state, supervisor, metrics_url)
    running = read_live_state(stack.data_dir)
    if running is not None:
        metrics.close()
        fail(f"a stack already runs from {stack.data_dir} (pid {running.pid}); stop it first")
    taken = stack.ports_in_use(skip_model, skip_retriever)
    if taken:
        metrics.close()
        fail(
            f"in use by another process: {', '.join(taken)}; stop it, or set another port "
            "(e.g. TRIVIUM_RETRIEVER__PORT)"
        )
    services = {"gateway": stack.gateway_url}
    if not skip_model:
        services["model"] = stack.model_url
    if not skip_retriever:
        services["retriever"] = stack.retriever_url
    status = 1
    try:
        state_file = stack.start_redis(services)
        stack.configure_gateway()
        if not skip_model:
            stack.start_model()
        if not skip_retriever:
            stack.start_retriever()
        stack.start_gateway()
        msgspec.structs.replace(state_file, phase="running").write()
        stack.announce()
        status = supervisor.run()
    except _StopRequested:
        status = 0
    except RuntimeError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
    finally:
        supervisor.stop_all()
        metrics.close()
        remove_state(stack.data_dir, os.getpid())
    sys.exit(status)
