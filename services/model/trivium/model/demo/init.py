"""`init-demo`: build the demo base model, fine-tune the triage adapter, label it production.

Both steps are skipped when their result is already there: the base when
`base_model_dir/config.json` exists, the adapter when `triage-lora@production` resolves to
an adapter (still on disk) trained on exactly this base model and this training set (same
`base_model_sha256` and `dataset_sha256`). The training set is the training side of the
shipped tickets' split (`trivium.model.data.triage`), as the prompt the gateway serves; the
held-out side is never trained on (it is the `triage-eval` dataset the trials measure).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivium.model.adapters import AdapterStore
from trivium.model.config import ModelSettings
from trivium.model.data.triage import training_jsonl, triage_split
from trivium.model.demo.base import build_demo_base
from trivium.model.finetune.base_model import base_model_sha256, model_type
from trivium.model.finetune.register import open_adapter_store, register_finetuned
from trivium.model.finetune.train import finetune
from trivium.registry import ArtifactVersion, Registry
from trivium.registry.errors import UnknownArtifactError, UnknownLabelError

__all__ = ("DEMO_ACTOR", "DEMO_ADAPTER", "DEMO_LABEL", "InitDemoReport", "run_init_demo")

DEMO_ADAPTER = "triage-lora"
DEMO_LABEL = "production"
DEMO_ACTOR = "trivium-demo"
DEMO_VALIDATION_FRACTION = 0.1
"""Of the training tickets, the share the fine-tune keeps aside for its own metrics."""


def demo_training_set() -> bytes:
    """The adapter's training file: the training tickets of the split, as served prompts."""
    return training_jsonl(triage_split().train)


@dataclass(frozen=True)
class InitDemoReport:
    base_dir: Path
    base_built: bool
    adapter_ref: str | None
    """`triage-lora@N`, the version `production` points at; None when the base is not GPT-2."""
    adapter_trained: bool
    metrics: dict[str, Any]
    """The adapter's registered metrics (exact_match, base_exact_match, eval_loss, ...)."""
    base_seconds: float
    finetune_seconds: float
    total_seconds: float

    def summary(self) -> str:
        base = (
            f"demo base built in {self.base_seconds:.0f}s"
            if self.base_built
            else "base model already present"
        )
        if self.adapter_ref is None:
            return f"{base} ({self.base_dir}); not a GPT-2 model, so no demo adapter"
        m = self.metrics
        done = (
            f"trained in {self.finetune_seconds:.0f}s"
            if self.adapter_trained
            else "already registered"
        )
        return (
            f"{base} ({self.base_dir}); {self.adapter_ref} -> {DEMO_LABEL} ({done}): "
            f"held-out exact match {m.get('exact_match', 0):.0%} "
            f"vs {m.get('base_exact_match', 0):.0%} for the base, "
            f"eval loss {m.get('eval_loss', float('nan')):.3f}"
        )


async def run_init_demo(settings: ModelSettings, progress: bool = True) -> InitDemoReport:
    """Build the demo base (unless present), then train, register and promote `triage-lora`
    (unless production already serves one trained on this base). A configured base that is
    not GPT-2 (a real model) is left alone and gets no demo adapter."""
    started = time.perf_counter()
    base_dir = settings.base_model_dir
    threads = settings.model.transformers.torch_threads
    base_built = not (base_dir / "config.json").is_file()
    if base_built:
        await asyncio.to_thread(
            lambda: build_demo_base(base_dir, progress=progress, threads=threads)
        )
    base_seconds = time.perf_counter() - started
    if model_type(base_dir) != "gpt2":
        return InitDemoReport(
            base_dir, base_built, None, False, {}, base_seconds, 0.0, time.perf_counter() - started
        )
    base_sha = await asyncio.to_thread(base_model_sha256, base_dir)
    async with open_adapter_store(settings) as store:
        current = await _current_adapter(store.registry, base_sha, _sha256(demo_training_set()))
        trained = current is None
        finetune_started = time.perf_counter()
        if current is None:
            current = await _train_and_promote(store, base_dir, threads, progress)
        finetune_seconds = time.perf_counter() - finetune_started if trained else 0.0
    metrics = current.metadata.get("metrics")
    return InitDemoReport(
        base_dir=base_dir,
        base_built=base_built,
        adapter_ref=current.ref,
        adapter_trained=trained,
        metrics=metrics if isinstance(metrics, dict) else {},
        base_seconds=base_seconds,
        finetune_seconds=finetune_seconds,
        total_seconds=time.perf_counter() - started,
    )


async def _train_and_promote(
    store: AdapterStore, base_dir: Path, threads: int, progress: bool
) -> ArtifactVersion:
    """Fine-tune the training tickets, register the adapter and point `production` at it."""
    with tempfile.TemporaryDirectory(prefix="trivium-demo-") as scratch:
        out_dir = Path(scratch) / "adapter"
        data_path = Path(scratch) / "triage-train.jsonl"
        data_path.write_bytes(demo_training_set())
        report = await asyncio.to_thread(
            lambda: finetune(
                base_dir,
                data_path,
                out_dir,
                eval_fraction=DEMO_VALIDATION_FRACTION,
                threads=threads,
                progress=progress,
            )
        )
        result = await register_finetuned(store, DEMO_ADAPTER, out_dir, report, actor=DEMO_ACTOR)
    await store.registry.promote(
        DEMO_ADAPTER, DEMO_LABEL, result.artifact.version, actor=DEMO_ACTOR
    )
    return result.artifact


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _current_adapter(
    registry: Registry, base_sha: str, dataset_sha: str
) -> ArtifactVersion | None:
    """The production demo adapter, if it was trained on this exact base and training set
    and is on disk."""
    try:
        artifact = await registry.resolve(f"{DEMO_ADAPTER}@{DEMO_LABEL}")
    except (UnknownArtifactError, UnknownLabelError):
        return None
    if artifact.metadata.get("base_model_sha256") != base_sha:
        return None
    if artifact.metadata.get("dataset_sha256") != dataset_sha:
        return None
    if not (Path(artifact.body) / "adapter_config.json").is_file():
        return None
    return artifact
