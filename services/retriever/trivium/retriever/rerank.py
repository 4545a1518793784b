"""Cross-encoder re-ranking, fast without changing the ranking.

sentence-transformers' `CrossEncoder.predict` already sorts pairs by length and runs under
inference mode. On top of it: a bounded LRU score cache keyed by (query, chunk content hash),
so a repeated query or a passage seen again costs nothing; only the misses go to the model,
in one length-sorted batch. Optional int8 dynamic quantization of the Linear layers is off by
default: it changes scores slightly, so keep it only where the benchmark shows the same order.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ("RerankCandidate", "Reranker", "RerankerLoadError")


class RerankerLoadError(RuntimeError):
    """The configured cross-encoder cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RerankCandidate:
    text: str
    key: str
    """A stable content key (the chunk's sha256): the score cache's half of the key."""


class Reranker:
    def __init__(
        self,
        model_dir: Path,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        cache_size: int = 20_000,
        device: str = "cpu",
        quantize_int8: bool = False,
    ) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        if not (model_dir / "config.json").is_file():
            raise RerankerLoadError(
                f"cannot load cross-encoder from {model_dir}: config.json missing"
            )
        try:
            model = CrossEncoder(
                str(model_dir), device=device, max_length=max_length, local_files_only=True
            )
        except Exception as exc:
            raise RerankerLoadError(f"cannot load cross-encoder from {model_dir}: {exc}") from exc
        if model.num_labels != 1:
            raise RerankerLoadError(
                f"cross-encoder at {model_dir} has {model.num_labels} labels; re-ranking needs 1"
            )
        if quantize_int8:
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        self._model = model
        self.model_name = model_dir.name
        self._batch_size = batch_size
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def score(self, query: str, candidates: Sequence[RerankCandidate]) -> list[float]:
        """One relevance score per candidate, in input order; higher is more relevant."""
        query_key = hashlib.sha256(query.encode()).hexdigest()
        scores: list[float | None] = [None] * len(candidates)
        with self._cache_lock:
            for i, candidate in enumerate(candidates):
                cached = self._cache.get((query_key, candidate.key))
                if cached is not None:
                    self._cache.move_to_end((query_key, candidate.key))
                    scores[i] = cached
            missing = [i for i, s in enumerate(scores) if s is None]
            self._hits += len(candidates) - len(missing)
            self._misses += len(missing)
        if missing:
            pairs = [(query, candidates[i].text) for i in missing]
            with self._model_lock:
                predicted = self._model.predict(
                    pairs,
                    batch_size=self._batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                )
            with self._cache_lock:
                for i, value in zip(missing, predicted.tolist(), strict=True):
                    scores[i] = float(value)
                    self._remember((query_key, candidates[i].key), float(value))
        return [s if s is not None else 0.0 for s in scores]

    def _remember(self, key: tuple[str, str], value: float) -> None:
        if self._cache_size <= 0:
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def cache_info(self) -> tuple[int, int, int]:
        """(hits, misses, entries)."""
        with self._cache_lock:
            return self._hits, self._misses, len(self._cache)
