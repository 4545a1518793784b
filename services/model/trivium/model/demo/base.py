"""The offline demo base model: a small GPT-2 pre-trained for a minute on the shipped corpus.

It is a toy on purpose (no weights can be downloaded): big enough to learn the triage task
through a LoRA adapter, small enough to build on two CPU cores during `init-demo`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from trivium.common.errors import InvalidInputError
from trivium.model.data.triage import triage_split
from trivium.model.demo.tokenizer import train_tokenizer
from trivium.model.finetune.loop import train_steps
from trivium.model.finetune.runtime import configure_torch

__all__ = ("DATA_PACKAGE", "build_demo_base", "corpus_lines")

DATA_PACKAGE = "trivium.model.data"


def corpus_lines() -> list[str]:
    """The pre-training corpus, without the held-out triage tickets (the trials' eval set):
    the base never reads them, even unlabelled."""
    text = resources.files(DATA_PACKAGE).joinpath("corpus.txt").read_text(encoding="utf-8")
    held_out = {ticket.text for ticket in triage_split().held_out}
    return [line for line in text.splitlines() if line.strip() and line not in held_out]


def _token_stream(tokenizer: Any, lines: list[str]) -> torch.Tensor:
    """Every corpus line followed by the end-of-text token, as one long sequence."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for encoded in tokenizer(lines, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def _random_blocks(
    stream: torch.Tensor, block_size: int, batch_size: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    limit = len(stream) - block_size
    if limit < 1:
        raise InvalidInputError(
            f"the corpus is {len(stream)} tokens, shorter than one {block_size}-token block",
            field="block_size",
        )
    offsets = torch.arange(block_size)
    while True:
        starts = torch.randint(0, limit, (batch_size,), generator=generator)
        block = stream[starts[:, None] + offsets]
        yield {"input_ids": block, "labels": block}


def build_demo_base(
    out_dir: Path,
    *,
    seed: int = 0,
    progress: bool = True,
    vocab_size: int = 2000,
    n_embd: int = 128,
    n_layer: int = 4,
    n_head: int = 4,
    n_positions: int = 512,
    pretrain_steps: int = 300,
    batch_size: int = 16,
    block_size: int = 128,
    lr: float = 3e-3,
    threads: int = 2,
) -> Path:
    """Train the tokenizer and pre-train the model; save both (safetensors) into `out_dir`.

    The files are written to a sibling staging directory and moved into place at the end,
    so `out_dir/config.json` existing means a complete model. `out_dir` must not exist or
    be empty. The same arguments give the same weights.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInputError(f"{out_dir} exists and is not empty", field="out_dir")
    if block_size > n_positions:
        raise InvalidInputError(
            f"block_size {block_size} exceeds n_positions {n_positions}", field="block_size"
        )
    configure_torch(threads, seed)
    lines = corpus_lines()
    tokenizer = train_tokenizer(lines, vocab_size=vocab_size, model_max_length=n_positions)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    train_steps(
        model,
        _random_blocks(_token_stream(tokenizer, lines), block_size, batch_size, seed),
        steps=pretrain_steps,
        lr=lr,
        warmup_steps=max(1, pretrain_steps // 20),
        weight_decay=0.01,
        progress=progress,
        desc="pre-train demo base",
    )
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    if out_dir.exists():
        out_dir.rmdir()
    staging.rename(out_dir)
    return out_dir
