"""`trivium retriever serve|ingest|config`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trivium.cli.context import CliState, print_json, run_async
from trivium.common.contracts.retriever import DocumentIn
from trivium.common.errors import TriviumError
from trivium.common.http.exposure import InsecureExposureError
from trivium.retriever.config import RetrieverSettings
from trivium.retriever.indexing.sources import expand_paths, read_documents

if TYPE_CHECKING:
    from trivium.gateway.clients.retriever import RetrieverClient

__all__ = ("IngestSummary", "ingest_paths", "retriever")

pass_state = click.make_pass_decorator(CliState)
MAX_BATCH_BYTES = 4 * 1024 * 1024


@click.group()
def retriever() -> None:
    """The retriever: ingest, hybrid search and re-ranking over Qdrant."""


@retriever.command("serve")
@pass_state
def retriever_serve(state: CliState) -> None:
    """Serve the retriever (Qdrant's engine in process unless store.backend is qdrant)."""
    from trivium.retriever.api.server import serve
    from trivium.retriever.search.embedding import EmbeddingLoadError
    from trivium.retriever.search.rerank import RerankerLoadError

    try:
        serve(state.settings(RetrieverSettings))
    except (EmbeddingLoadError, RerankerLoadError) as exc:
        raise click.ClickException(f"retriever cannot start: {exc}") from exc
    except InsecureExposureError as exc:
        raise click.ClickException(f"retriever cannot start: {exc.message}") from exc


@retriever.command("config")
@pass_state
def retriever_config(state: CliState) -> None:
    """Print the retriever's effective settings (file + environment + defaults)."""
    print_json(state.settings(RetrieverSettings).model_dump(mode="json", exclude={"config_file"}))


@dataclass
class IngestSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} deleted ({self.chunks_written} chunks written, "
            f"{self.chunks_deleted} removed)"
        )


@retriever.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "-c", default="docs", show_default=True)
@click.option("--url", default=None, help="Retriever base URL; default: from the settings.")
@click.option(
    "--delete-missing",
    is_flag=True,
    help="Delete documents of the collection that these paths no longer contain.",
)
@click.option("--batch-size", type=click.IntRange(1, 1000), default=64, show_default=True)
@pass_state
def retriever_ingest(
    state: CliState,
    paths: tuple[Path, ...],
    collection: str,
    url: str | None,
    delete_missing: bool,
    batch_size: int,
) -> None:
    """Ingest JSONL, Markdown and text files (directories are walked).

    JSONL lines are objects with `text` and optional `id`, `title`, `source`, `metadata`.
    Re-ingesting unchanged documents does no work; changed ones replace their old chunks.
    """
    from trivium.gateway.clients.retriever import RetrieverClient  # aiohttp: only when used

    settings = state.settings(RetrieverSettings)
    section = settings.retriever
    host = "127.0.0.1" if section.host in ("0.0.0.0", "::") else section.host  # noqa: S104
    base_url = url or f"http://{host}:{section.port}"
    token = os.environ.get("TRIVIUM_RETRIEVER_TOKEN")

    async def ingest(documents: list[DocumentIn]) -> IngestSummary:
        async with RetrieverClient(base_url, token=token) as client:
            return await ingest_paths(
                client, collection, documents, batch_size, delete_missing, progress=True
            )

    try:
        documents = [
            doc for path, root in expand_paths(paths) for doc in read_documents(path, root)
        ]
    except TriviumError as exc:
        raise click.ClickException(exc.message) from exc
    summary = run_async(ingest(documents))
    click.echo(f"{collection}: {summary.line()}", err=True)
    print_json(
        {
            "collection": collection,
            "added": summary.added,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "deleted": summary.deleted,
            "chunks_written": summary.chunks_written,
            "chunks_deleted": summary.chunks_deleted,
        }
    )


async def ingest_paths(
    client: RetrieverClient,
    collection: str,
    documents: Sequence[DocumentIn],
    batch_size: int,
    delete_missing: bool,
    progress: bool = False,
) -> IngestSummary:
    """Create the collection if needed, upload in batches, optionally prune; returns counts."""
    if await client.collection(collection) is None:
        await client.create_collection(collection)
    summary = IngestSummary()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(f"ingest {collection}", total=len(documents))
        for batch in _batches(documents, batch_size):
            result = await client.ingest(collection, batch)
            summary.added += len(result.added)
            summary.updated += len(result.updated)
            summary.unchanged += len(result.unchanged)
            summary.chunks_written += result.chunks_written
            summary.chunks_deleted += result.chunks_deleted
            bar.advance(task, len(batch))
    if delete_missing:
        wanted = {doc.id for doc in documents}
        stale = [doc.id async for doc in client.documents(collection) if doc.id not in wanted]
        for doc_id in stale:
            deleted = await client.delete_document(collection, doc_id)
            summary.chunks_deleted += deleted.chunks_deleted
            summary.deleted += 1
    return summary


def _batches(documents: Sequence[DocumentIn], size: int) -> list[list[DocumentIn]]:
    batches: list[list[DocumentIn]] = []
    current: list[DocumentIn] = []
    current_bytes = 0
    for doc in documents:
        doc_bytes = len(doc.text.encode()) + 512
        if current and (len(current) >= size or current_bytes + doc_bytes > MAX_BATCH_BYTES):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(doc)
        current_bytes += doc_bytes
    if current:
        batches.append(current)
    return batches
