"""Cross-encoder re-ranking, fast without changing the ranking.

The scores are those of `CrossEncoder.predict` (the model's logit through the CrossEncoder's
activation, a sigmoid for a one-label model), computed with less work:

* the pairs are tokenized once, sorted by token length and run in batches of similar length,
  each of at most `batch_size` pairs and `max_batch_tokens` padded tokens, so little is padded
  (on CPU, smaller batches of long pairs are faster too);
* a bounded LRU cache keyed by (sha256 of the query, the passage's content key) answers a
  (query, passage) pair seen before without the model;
* with `backend="onnx"` the logits come from ONNX Runtime, from an export of the same weights
  cached under `cache_dir` and checked against torch when it is made (onnx_export.py).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trivium.retriever.config import InferenceBackend, OnnxVariant
from trivium.retriever.search.length_batches import length_batches as _length_batches
from trivium.retriever.search.onnx_cache import CachedExport, ExportKey, OnnxCache, model_digest
from trivium.retriever.search.onnx_runtime import OnnxModel, onnxruntime_available

__all__ = ("RerankCandidate", "Reranker", "RerankerLoadError")


log = logging.getLogger(__name__)


class RerankerLoadError(RuntimeError):
    """The configured cross-encoder cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RerankCandidate:
    text: str
    key: str
    """A stable content key (the chunk's sha256): the passage's half of the cache key."""


class Reranker:
    """Scores (query, passage) pairs with a one-label CrossEncoder; safe to share across threads."""

    def __init__(
        self,
        model_dir: Path,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        cache_size: int = 20_000,
        device: str = "cpu",
        max_batch_tokens: int = 2048,
        backend: InferenceBackend = "torch",
        onnx_variant: OnnxVariant = "fp32",
        cache_dir: Path | None = None,
        threads: int = 2,
    ) -> None:
        from sentence_transformers import CrossEncoder

        if batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("batch_size and max_batch_tokens must be at least 1")
        reason = _missing_files(model_dir)
        if reason is not None:
            raise RerankerLoadError(f"cannot load cross-encoder from {model_dir}: {reason}")
        try:
            encoder: CrossEncoder = CrossEncoder(
                str(model_dir), device=device, max_length=max_length, local_files_only=True
            )
        except Exception as exc:
            raise RerankerLoadError(f"cannot load cross-encoder from {model_dir}: {exc}") from exc
        activation = encoder.activation_fn
        if encoder.model is None or encoder.tokenizer is None or activation is None:
            raise RerankerLoadError(
                f"cannot load cross-encoder from {model_dir}: not a sequence-classification model"
            )
        if encoder.num_labels != 1:
            raise RerankerLoadError(
                f"cannot load cross-encoder from {model_dir}: "
                f"{encoder.num_labels} labels, re-ranking needs 1"
            )
        self._name = model_dir.name
        encoder.eval()
        self.backend: InferenceBackend = "torch"
        self.export: CachedExport | None = None
        self._onnx: OnnxModel | None = None
        if backend == "onnx" and device == "cpu":
            if cache_dir is None:
                cache_dir = Path(tempfile.mkdtemp(prefix="trivium-onnx-"))  # this object's own
                weakref.finalize(self, shutil.rmtree, cache_dir, ignore_errors=True)
            self._onnx = self._load_onnx(model_dir, encoder, onnx_variant, cache_dir, threads)
            if self._onnx is not None:
                self.backend = "onnx"
        self._model: torch.nn.Module = encoder.model
        self._tokenizer: Any = encoder.tokenizer
        self._activation: Callable[[torch.Tensor], torch.Tensor] = activation
        self._max_length = encoder.max_seq_length
        self._device = torch.device(device)
        self._batch_size = batch_size
        self._max_batch_tokens = max_batch_tokens
        # Fast tokenizers mutate their truncation/padding state on each call, so tokenizing is
        # not thread-safe; and two forwards at once would only fight over the same cores.
        self._model_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def _load_onnx(
        self,
        model_dir: Path,
        encoder: Any,
        variant: OnnxVariant,
        cache_dir: Path,
        threads: int,
    ) -> OnnxModel | None:
        if not onnxruntime_available():
            log.warning("onnxruntime is not installed; re-ranking on torch")
            return None
        from trivium.retriever.search.onnx_export import (
            TEXT_INPUTS,
            export_cross_encoder,
        )

        key = ExportKey("cross-encoder", variant, model_digest(model_dir))
        try:
            self.export = OnnxCache(cache_dir).get_or_export(
                key, lambda target: export_cross_encoder(model_dir, encoder, target, variant)
            )
            return OnnxModel(self.export.path, threads=threads, input_names=TEXT_INPUTS)
        except Exception as exc:  # torch is the fallback; the log says why
            log.warning(
                "onnx export of the cross-encoder failed; re-ranking on torch",
                extra={"model": self._name, "error": str(exc)},
            )
            return None

    @property
    def model_name(self) -> str:
        return self._name

    def score(self, query: str, candidates: Sequence[RerankCandidate]) -> list[float]:
        """One relevance score per candidate, in input order; higher is more relevant."""
        query_key = hashlib.sha256(query.encode()).hexdigest()
        scores: dict[str, float] = {}
        with self._cache_lock:
            for candidate in candidates:
                cached = self._cache.get((query_key, candidate.key))
                if cached is not None:
                    self._cache.move_to_end((query_key, candidate.key))
                    scores[candidate.key] = cached
            self._hits += len(scores)
        # One model row per distinct missing passage, even if the caller repeats one.
        missing = {c.key: c.text for c in candidates if c.key not in scores}
        if missing:
            computed = self._predict(query, list(missing.values()))
            scores.update(zip(missing, computed, strict=True))
            with self._cache_lock:
                self._misses += len(missing)
                for key, value in zip(missing, computed, strict=True):
                    self._remember((query_key, key), value)
        return [scores[c.key] for c in candidates]

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def cache_info(self) -> tuple[int, int, int]:
        """(hits, misses, entries), counted in (query, passage) pairs."""
        with self._cache_lock:
            return self._hits, self._misses, len(self._cache)

    def _predict(self, query: str, texts: list[str]) -> list[float]:
        with self._model_lock, torch.inference_mode():
            encoded = self._tokenizer(
                [query] * len(texts),
                texts,
                truncation="longest_first",
                max_length=self._max_length,
                padding=False,
            )
            lengths = [len(ids) for ids in encoded["input_ids"]]
            scores = [0.0] * len(texts)
            for batch in _length_batches(lengths, self._batch_size, self._max_batch_tokens):
                columns = {name: [column[i] for i in batch] for name, column in encoded.items()}
                if self._onnx is not None:
                    features = self._tokenizer.pad(columns, return_tensors="np")
                    logits = torch.from_numpy(self._onnx.run(features))
                else:
                    features = self._tokenizer.pad(columns, return_tensors="pt")
                    logits = self._model(**features.to(self._device)).logits
                values = self._activation(logits.float()).squeeze(-1).tolist()
                for i, value in zip(batch, values, strict=True):
                    scores[i] = value
            return scores

    def _remember(self, key: tuple[str, str], value: float) -> None:
        if self._cache_size <= 0:
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _missing_files(model_dir: Path) -> str | None:
    if not model_dir.is_dir():
        return "no such directory"
    if not (model_dir / "config.json").is_file():
        return "config.json missing"
    return None
