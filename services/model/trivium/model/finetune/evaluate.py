"""Held-out evaluation: completion loss and exact match of greedy generation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from trivium.model.finetune.loop import causal_lm_loss
from trivium.model.finetune.prompts import Encoded, collate_prompts, collate_training

__all__ = ("Evaluation", "chunks", "evaluate", "exact_match", "greedy_completions")

T = TypeVar("T")


@dataclass(frozen=True)
class Evaluation:
    loss: float
    """Mean cross-entropy per completion token (eos included)."""
    exact_match: float
    """Share of examples whose greedy completion, stripped, equals the expected one."""


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def evaluate(model: Any, tokenizer: Any, rows: Sequence[Encoded], *, batch_size: int) -> Evaluation:
    return Evaluation(
        loss=completion_loss(model, rows, pad_id=tokenizer.pad_token_id, batch_size=batch_size),
        exact_match=exact_match(model, tokenizer, rows, batch_size=batch_size),
    )


def completion_loss(model: Any, rows: Sequence[Encoded], *, pad_id: int, batch_size: int) -> float:
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for chunk in chunks(rows, batch_size):
            loss, tokens = causal_lm_loss(model, collate_training(chunk, pad_id), reduction="sum")
            total += float(loss)
            count += tokens
    return total / count


def greedy_completions(
    model: Any, tokenizer: Any, rows: Sequence[Encoded], *, batch_size: int
) -> list[str]:
    """Greedy decoding of each prompt, up to the longest expected completion plus one token."""
    max_new = max(len(r.completion_ids) for r in rows) + 1
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    texts: list[str] = []
    model.eval()
    with torch.inference_mode():
        for chunk in chunks(rows, batch_size):
            batch = collate_prompts(chunk, pad)
            output = model.generate(
                **batch,
                max_new_tokens=max_new,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=pad,
            )
            for generated in output[:, batch["input_ids"].shape[1] :].tolist():
                if eos in generated:
                    generated = generated[: generated.index(eos)]
                texts.append(str(tokenizer.decode(generated, skip_special_tokens=True)))
    return texts


def exact_match(model: Any, tokenizer: Any, rows: Sequence[Encoded], *, batch_size: int) -> float:
    predictions = greedy_completions(model, tokenizer, rows, batch_size=batch_size)
    hits = sum(
        prediction.strip() == row.completion.strip()
        for prediction, row in zip(predictions, rows, strict=True)
    )
    return hits / len(rows)
