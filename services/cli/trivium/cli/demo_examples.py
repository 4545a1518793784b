"""Loading the shipped examples into a stack: their collections and their datasets.

`trivium up` ingests `triage-examples` (seconds) and publishes `triage-eval`; the PubMedQA
collection takes longer to embed, so it is its own command: `trivium demo ingest-pubmedqa`
(and `trivium demo publish-datasets` publishes both datasets into a running stack);
`trivium demo build-reranker` trains the cross-encoder of `pubmed-qa`'s `hybrid-rerank` arm.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from trivium.cli.context import CliState, find_stack_store, run_async
from trivium.cli.demo_data import (
    PUBMEDQA_COLLECTION,
    PUBMEDQA_DATASET,
    TRIAGE_DATASET,
    TRIAGE_EXAMPLES_COLLECTION,
    encode_jsonl,
    shipped_documents,
    shipped_rows,
    triage_example_documents,
)
from trivium.cli.retriever import IngestSummary, ingest_paths
from trivium.common.contracts.retriever import DocumentIn
from trivium.common.settings import TriviumSettings
from trivium.registry.datasets import DatasetStore, parse_dataset
from trivium.retriever.config import RetrieverSettings

__all__ = (
    "DEMO_DATASETS",
    "demo",
    "ingest_collection",
    "ingest_triage_examples",
    "publish_demo_datasets",
)

DEMO_DATASETS: dict[str, tuple[str, ...]] = {
    TRIAGE_DATASET: ("triage-eval.jsonl",),
    PUBMEDQA_DATASET: ("pubmedqa", "pubmedqa-eval.jsonl"),
}
"""Each shipped dataset's name and its file under `trivium/cli/demo_datasets/`."""
DEMO_ACTOR = "trivium-demo"

pass_state = click.make_pass_decorator(CliState)


async def ingest_collection(
    base_url: str,
    collection: str,
    documents: Sequence[DocumentIn],
    *,
    progress: bool = False,
    token: str | None = None,
) -> IngestSummary:
    """Create `collection` if needed and make it hold exactly `documents` (idempotent)."""
    from trivium.gateway.clients.retriever import RetrieverClient  # aiohttp: only when used

    async with RetrieverClient(base_url, token=token) as client:
        return await ingest_paths(
            client, collection, documents, batch_size=64, delete_missing=True, progress=progress
        )


def ingest_triage_examples(base_url: str) -> str:
    """The training tickets, labelled, into `triage-examples` (the few-shot rag road's)."""
    summary = run_async(
        ingest_collection(base_url, TRIAGE_EXAMPLES_COLLECTION, triage_example_documents())
    )
    return f"{TRIAGE_EXAMPLES_COLLECTION}: {summary.line()}"


async def publish_demo_datasets(
    settings: TriviumSettings, names: Sequence[str] = (TRIAGE_DATASET,)
) -> list[str]:
    """Publish the shipped datasets `names` (idempotent: an unchanged file is the same version)."""
    from trivium.common.redis import open_redis

    published = []
    async with open_redis(settings.redis, settings.data_dir) as client:
        store = DatasetStore(client, settings.registry)
        for name in names:
            rows = encode_jsonl(shipped_rows(*DEMO_DATASETS[name]))
            parsed = parse_dataset(rows.splitlines(keepends=True))
            result = await store.publish(name, parsed, actor=DEMO_ACTOR)
            published.append(str(result.artifact.ref))
    return published


def _retriever_url(state: CliState, url: str | None) -> str:
    section = state.settings(RetrieverSettings).retriever
    host = "127.0.0.1" if section.host in ("0.0.0.0", "::") else section.host  # noqa: S104
    return url or f"http://{host}:{section.port}"


@click.group()
def demo() -> None:
    """Load the shipped examples into a running stack (see README, Trials)."""


@demo.command("ingest-pubmedqa")
@click.option("--url", default=None, help="Retriever base URL; default: from the settings.")
@pass_state
def ingest_pubmedqa(state: CliState, url: str | None) -> None:
    """Ingest the shipped PubMedQA abstracts (650 passages of 200 questions) into the
    collection `pubmedqa`, which the demo feature `pubmed-qa` retrieves from."""
    documents = shipped_documents("pubmedqa", "documents.jsonl")
    summary = run_async(
        ingest_collection(
            _retriever_url(state, url),
            PUBMEDQA_COLLECTION,
            documents,
            progress=True,
            token=os.environ.get("TRIVIUM_RETRIEVER_TOKEN"),
        )
    )
    click.echo(f"{PUBMEDQA_COLLECTION}: {summary.line()}", err=True)


@demo.command("publish-datasets")
@pass_state
def publish_datasets(state: CliState) -> None:
    """Publish the shipped trial datasets (triage-eval, pubmedqa-eval) into the stack's
    registry."""
    settings = find_stack_store(state.settings(TriviumSettings))
    for line in run_async(publish_demo_datasets(settings, tuple(DEMO_DATASETS))):
        click.echo(line)


@demo.command("build-reranker")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads.")
@click.option("--force", is_flag=True, help="Train again even if one is there.")
@pass_state
def build_reranker(state: CliState, steps: int | None, threads: int | None, force: bool) -> None:
    """Fine-tune the demo cross-encoder (all-MiniLM-L6-v2 under a fresh head) on the 800
    PubMedQA questions that are not evaluated: about a minute on a CPU, skipped when built.
    `trivium up` then serves it as the retriever's re-ranker (restart a running stack)."""
    import dataclasses

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from trivium.cli.demo_reranker import build_demo_reranker
    from trivium.retriever.training.cross_encoder import CrossEncoderTrainingConfig

    settings = state.settings(RetrieverSettings)
    config = CrossEncoderTrainingConfig()
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    columns = (
        TextColumn("train re-ranker"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("train", total=config.steps, loss="-")

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step, loss=f"{loss:.3f}")

        built = build_demo_reranker(
            settings.data_dir.resolve(), config, force=force, on_step=on_step
        )
    click.echo(built.summary(), err=True)
