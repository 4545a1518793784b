"""Publishing a fine-tuned adapter into the registry, and the `finetune` command's body."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from trivium.common.redis import open_redis
from trivium.model.adapters import ADAPTER_KIND, AdapterStore
from trivium.model.config import ModelSettings
from trivium.model.finetune.train import DEFAULT_EPOCHS, DEFAULT_LR, FinetuneReport, finetune
from trivium.registry import PublishResult, Registry

__all__ = ("open_adapter_store", "register_finetuned", "run_finetune_command")


async def register_finetuned(
    store: AdapterStore,
    name: str,
    out_dir: Path,
    report: FinetuneReport,
    actor: str | None = None,
) -> PublishResult:
    """Copy the adapter in `out_dir` into the store and publish it as a version of `name`,
    with the run's metadata (base model and its sha256, dataset sha256, hyper-parameters,
    metrics, prompt format, training time). Publishing the same directory again is a no-op."""
    return await store.register(name, out_dir, report.metadata(), actor=actor)


@asynccontextmanager
async def open_adapter_store(settings: ModelSettings) -> AsyncIterator[AdapterStore]:
    """The adapter store on the configured Redis (or the embedded one)."""
    async with open_redis(settings.redis, settings.data_dir) as client:
        registry = Registry(client, ADAPTER_KIND, settings.registry, cache=False)
        yield AdapterStore(settings.adapter_store_dir, registry)


async def run_finetune_command(
    settings: ModelSettings,
    base: Path,
    data: Path,
    name: str,
    promote_label: str | None,
    *,
    rank: int = 8,
    alpha: int = 16,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    eval_fraction: float = 0.2,
    seed: int = 0,
    actor: str | None = None,
    progress: bool = True,
) -> FinetuneReport:
    """Fine-tune `base` on `data`, register the adapter as `name` and optionally point
    `promote_label` at the new version. Returns the report with the registered version."""
    threads = settings.model.transformers.torch_threads
    with tempfile.TemporaryDirectory(prefix="trivium-finetune-") as scratch:
        out_dir = Path(scratch) / "adapter"
        report = await asyncio.to_thread(
            lambda: finetune(
                base,
                data,
                out_dir,
                rank=rank,
                alpha=alpha,
                epochs=epochs,
                lr=lr,
                eval_fraction=eval_fraction,
                seed=seed,
                threads=threads,
                progress=progress,
            )
        )
        async with open_adapter_store(settings) as store:
            result = await register_finetuned(store, name, out_dir, report, actor)
            version = result.artifact.version
            if promote_label is not None:
                await store.registry.promote(name, promote_label, version, actor=actor)
    stored = Path(result.artifact.body)
    return dataclasses.replace(report, adapter_dir=stored, name=name, version=version)
