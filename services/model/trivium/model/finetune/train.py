"""The quick LoRA fine-tune: split, train, evaluate base and adapter, save with metadata."""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from trivium.common.errors import InvalidInputError
from trivium.model.finetune.base_model import (
    base_model_sha256,
    context_window,
    load_base,
    model_type,
)
from trivium.model.finetune.dataset import Example, dataset_sha256, load_dataset
from trivium.model.finetune.evaluate import evaluate
from trivium.model.finetune.loop import train_steps
from trivium.model.finetune.prompts import Encoded, collate_training, encode_examples, prompt_format
from trivium.model.finetune.runtime import configure_torch

__all__ = (
    "GPT2_TARGET_MODULES",
    "METADATA_FILE",
    "FinetuneMetrics",
    "FinetuneReport",
    "finetune",
    "split_examples",
)

METADATA_FILE = "trivium_adapter.json"
GPT2_TARGET_MODULES = ("c_attn", "c_proj", "c_fc")
"""GPT-2's attention (qkv and output) and MLP projections; Conv1D, so fan_in_fan_out=True."""

DEFAULT_EPOCHS = 12
DEFAULT_LR = 3e-3
DEFAULT_BATCH_SIZE = 16
LORA_DROPOUT = 0.05


@dataclass(frozen=True)
class FinetuneMetrics:
    eval_loss: float
    base_eval_loss: float
    exact_match: float
    base_exact_match: float
    train_loss: float
    """Mean training loss over the last epoch."""
    train_examples: int
    eval_examples: int


@dataclass(frozen=True)
class FinetuneReport:
    adapter_dir: Path
    base_model: str
    base_model_sha256: str
    dataset_sha256: str
    hyperparameters: dict[str, Any]
    metrics: FinetuneMetrics
    prompt_format: dict[str, Any]
    train_seconds: float
    eval_seconds: float
    name: str | None = None
    version: int | None = None
    """Set once the adapter is registered."""

    def metadata(self) -> dict[str, Any]:
        """What the registry stores with the adapter (deterministic for one trained dir: the
        timings are the run's, as its metadata file records them). A trial prices the
        adapter's one-off training from `timings.train_seconds`."""
        return {
            "base_model": self.base_model,
            "base_model_sha256": self.base_model_sha256,
            "dataset_sha256": self.dataset_sha256,
            "hyperparameters": self.hyperparameters,
            "metrics": asdict(self.metrics),
            "prompt_format": self.prompt_format,
            "timings": {"train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds},
        }

    def summary(self) -> str:
        m = self.metrics
        ref = f"{self.name}@{self.version}" if self.name and self.version else str(self.adapter_dir)
        return (
            f"{ref}: exact match {m.exact_match:.0%} (base {m.base_exact_match:.0%}) on "
            f"{m.eval_examples} held-out examples, eval loss {m.eval_loss:.3f} "
            f"(base {m.base_eval_loss:.3f}); trained on {m.train_examples} in "
            f"{self.train_seconds:.1f}s"
        )


def split_examples(
    examples: Sequence[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle, then the first `eval_fraction` (at least one) held out."""
    if not 0 < eval_fraction < 1:
        raise InvalidInputError(
            f"eval_fraction must be between 0 and 1, got {eval_fraction}", field="eval_fraction"
        )
    if len(examples) < 2:
        raise InvalidInputError(
            f"a train/eval split needs at least 2 examples, got {len(examples)}", field="data"
        )
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held_out = min(len(examples) - 1, max(1, round(len(examples) * eval_fraction)))
    shuffled = [examples[i] for i in order]
    return shuffled[held_out:], shuffled[:held_out]


def _epoch_batches(
    rows: Sequence[Encoded], batch_size: int, pad_id: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    rng = random.Random(seed)
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield collate_training([rows[i] for i in order[start : start + batch_size]], pad_id)


def _check_hyperparameters(rank: int, alpha: int, epochs: int, lr: float, batch: int) -> None:
    checks = [
        ("rank", rank >= 1, f"rank must be at least 1, got {rank}"),
        ("alpha", alpha > 0, f"alpha must be positive, got {alpha}"),
        ("epochs", epochs >= 1, f"epochs must be at least 1, got {epochs}"),
        ("lr", 0 < lr < 1, f"lr must be in (0, 1), got {lr}"),
        ("batch_size", batch >= 1, f"batch_size must be at least 1, got {batch}"),
    ]
    for name, ok, message in checks:
        if not ok:
            raise InvalidInputError(message, field=name)


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInputError(f"output directory {out_dir} is not empty", field="out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)


def finetune(
    base_dir: Path,
    data_path: Path,
    out_dir: Path,
    *,
    rank: int = 8,
    alpha: int = 16,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    eval_fraction: float = 0.2,
    seed: int = 0,
    threads: int = 2,
    progress: bool = True,
) -> FinetuneReport:
    """Train a LoRA adapter on `data_path` and save it (PEFT files + metadata) in `out_dir`.

    Both the base model and the adapter are evaluated on the same held-out split, so the
    report shows what the adapter adds.
    """
    _check_hyperparameters(rank, alpha, epochs, lr, batch_size)
    base_dir = base_dir.resolve()
    kind = model_type(base_dir)
    if kind != "gpt2":
        raise InvalidInputError(
            f"{base_dir} is a {kind or 'unknown'} model; the LoRA targets here are GPT-2's "
            f"({', '.join(GPT2_TARGET_MODULES)})",
            field="base",
        )
    base_sha = base_model_sha256(base_dir)
    examples = load_dataset(data_path)
    train, held_out = split_examples(examples, eval_fraction, seed)
    _prepare_out_dir(out_dir)
    configure_torch(threads, seed)
    model, tokenizer = load_base(base_dir)
    context = context_window(model)
    train_rows = encode_examples(tokenizer, train, context)
    eval_rows = encode_examples(tokenizer, held_out, context)
    pad_id = int(tokenizer.pad_token_id)

    started = time.perf_counter()
    base_eval = evaluate(model, tokenizer, eval_rows, batch_size=batch_size)
    eval_seconds = time.perf_counter() - started

    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=LORA_DROPOUT,
        target_modules=list(GPT2_TARGET_MODULES),
        fan_in_fan_out=True,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`; not ours to fix.
        warnings.filterwarnings(
            "ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning
        )
        peft_model = get_peft_model(model, lora)
    steps_per_epoch = math.ceil(len(train_rows) / batch_size)
    steps = epochs * steps_per_epoch
    started = time.perf_counter()
    losses = train_steps(
        peft_model,
        _epoch_batches(train_rows, batch_size, pad_id, seed),
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        progress=progress,
        desc="fine-tune LoRA",
    )
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    adapter_eval = evaluate(peft_model, tokenizer, eval_rows, batch_size=batch_size)
    eval_seconds += time.perf_counter() - started

    peft_model.save_pretrained(str(out_dir))
    last_epoch = losses[-steps_per_epoch:]
    report = FinetuneReport(
        adapter_dir=out_dir.resolve(),
        base_model=str(base_dir),
        base_model_sha256=base_sha,
        dataset_sha256=dataset_sha256(data_path),
        hyperparameters={
            "method": "lora",
            "rank": rank,
            "alpha": alpha,
            "dropout": LORA_DROPOUT,
            "target_modules": list(GPT2_TARGET_MODULES),
            "epochs": epochs,
            "steps": steps,
            "lr": lr,
            "batch_size": batch_size,
            "eval_fraction": eval_fraction,
            "seed": seed,
        },
        metrics=FinetuneMetrics(
            eval_loss=adapter_eval.loss,
            base_eval_loss=base_eval.loss,
            exact_match=adapter_eval.exact_match,
            base_exact_match=base_eval.exact_match,
            train_loss=sum(last_epoch) / len(last_epoch),
            train_examples=len(train_rows),
            eval_examples=len(eval_rows),
        ),
        prompt_format=prompt_format(
            tokenizer, max(len(r.completion_ids) for r in [*train_rows, *eval_rows])
        ),
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
    )
    write_metadata(report)
    return report


def write_metadata(report: FinetuneReport) -> Path:
    path = report.adapter_dir / METADATA_FILE
    document = report.metadata()
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
