"""The optimisation loop shared by the demo pre-training and LoRA fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from trivium.model.finetune.runtime import progress_bar

__all__ = ("IGNORE_INDEX", "causal_lm_loss", "train_steps")

IGNORE_INDEX = -100
"""Label value the loss skips (prompt tokens and padding)."""


def causal_lm_loss(
    model: Any, batch: dict[str, torch.Tensor], *, reduction: str = "mean"
) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy over the labelled positions; returns (loss, token count).

    `batch` holds `input_ids`, optionally `attention_mask`, and `labels` aligned with
    `input_ids` (the token at each position, or IGNORE_INDEX); position t predicts t + 1.
    """
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    logits = model(**inputs).logits[:, :-1, :]
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )
    return loss, int((targets != IGNORE_INDEX).sum())


def train_steps(
    model: Any,
    batches: Iterator[dict[str, torch.Tensor]],
    *,
    steps: int,
    lr: float,
    warmup_steps: int,
    progress: bool,
    desc: str,
    weight_decay: float = 0.0,
) -> list[float]:
    """Run `steps` AdamW updates on the trainable parameters; return each step's loss.

    The learning rate warms up linearly for `warmup_steps`, then decays linearly to zero.
    Each batch is the model's keyword arguments plus `labels` (see `causal_lm_loss`).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    warmup = max(1, min(warmup_steps, steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    losses: list[float] = []
    model.train()
    with progress_bar(steps, desc, enabled=progress) as bar:
        for _ in range(steps):
            batch = next(batches)
            loss, _ = causal_lm_loss(model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged: loss {value} at step {len(losses)}")
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(value)
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", refresh=False)
    model.eval()
    return losses
