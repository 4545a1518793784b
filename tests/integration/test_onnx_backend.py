"""ONNX Runtime computes what torch computes: embeddings, cross-encoder order, export cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import cisi
from tests.support.tiny_cross_encoder import build_tiny_cross_encoder
from trivium.retriever.config import EmbeddingSection, InferenceBackend
from trivium.retriever.search.embedding import DenseEmbedder
from trivium.retriever.search.onnx_cache import MANIFEST_FILE, MODEL_FILE, model_digest
from trivium.retriever.search.rerank import RerankCandidate, Reranker

needs_cisi = pytest.mark.skipif(not cisi.cisi_available(), reason=f"CISI not at {cisi.CISI}")
MAX_LENGTH = 64  # tokens per (query, passage) pair: short, for speed
TIE = 1e-6


@pytest.fixture(scope="module")
def torch_embedder() -> DenseEmbedder:
    return DenseEmbedder(EmbeddingSection(backend="torch"))


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("onnx-ce") / "tiny-ce")


def _reranker(model_dir: Path, backend: InferenceBackend, cache_dir: Path) -> Reranker:
    return Reranker(
        model_dir, backend=backend, cache_dir=cache_dir, max_length=MAX_LENGTH, cache_size=0
    )


@needs_cisi
def test_fp32_onnx_embeddings_match_torch_on_cisi_queries(
    dense_embedder: DenseEmbedder, torch_embedder: DenseEmbedder
) -> None:
    assert dense_embedder.backend == "onnx"  # the default backend
    assert torch_embedder.backend == "torch"
    texts = list(cisi.queries().values())
    onnx_vectors = np.asarray(dense_embedder.embed(texts))
    torch_vectors = np.asarray(torch_embedder.embed(texts))
    cosines = (onnx_vectors * torch_vectors).sum(axis=1)
    assert len(cosines) == 112
    assert cosines.min() >= 0.9999
    # one query alone (no padding) gives the vector it gets inside a batch
    alone = np.asarray(dense_embedder.embed([texts[7]])[0])
    assert float(alone @ torch_vectors[7]) >= 0.9999


@needs_cisi
def test_cross_encoder_order_is_identical_on_cisi_top_50(
    cross_encoder: Path, tmp_path: Path
) -> None:
    torch_reranker = _reranker(cross_encoder, "torch", tmp_path)
    onnx_reranker = _reranker(cross_encoder, "onnx", tmp_path)
    assert (torch_reranker.backend, onnx_reranker.backend) == ("torch", "onnx")
    docs = cisi.corpus()
    queries = cisi.queries()
    index = cisi.LexicalIndex(docs)
    judged = cisi.judged_query_ids()
    assert len(judged) == 76
    strict = 0
    for query_id in judged:
        # cut to what the first MAX_LENGTH tokens hold anyway, to tokenize less
        passages = [docs[d][: MAX_LENGTH * 5] for d in index.top(queries[query_id], 50)]
        candidates = [RerankCandidate(p, hashlib.sha256(p.encode()).hexdigest()) for p in passages]
        expected = torch_reranker.score(queries[query_id], candidates)
        got = onnx_reranker.score(queries[query_id], candidates)
        assert max(expected) - min(expected) > 0.01  # scores that order something
        assert np.abs(np.subtract(got, expected)).max() < 1e-5
        assert _same_order(expected, got), query_id
        strict += _order(got) == _order(expected)
    assert strict >= len(judged) - 5  # near-ties of the tiny model are rare


def _order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def _same_order(expected: list[float], got: list[float]) -> bool:
    """ONNX's order is torch's; two passages whose torch scores differ by less than TIE
    (float32 noise) are a tie, and a tie may come in either order."""
    ranked = [expected[i] for i in _order(got)]
    return all(ranked[i] + TIE >= max(ranked[i + 1 :]) for i in range(len(ranked) - 1))


def test_export_is_cached_by_model_hash_and_reused(cross_encoder: Path, tmp_path: Path) -> None:
    first = _reranker(cross_encoder, "onnx", tmp_path)
    assert first.export is not None
    assert not first.export.reused
    second = _reranker(cross_encoder, "onnx", tmp_path)
    assert second.export is not None
    assert second.export.reused
    assert second.export.path == first.export.path
    assert first.export.path.parent.parent == tmp_path
    manifest: dict[str, Any] = json.loads((first.export.path.parent / MANIFEST_FILE).read_text())
    assert manifest["model_digest"] == model_digest(cross_encoder)
    assert model_digest(cross_encoder)[:32] in first.export.path.parent.name
    assert manifest["probe_max_logit_diff"] <= 1e-4

    other = build_tiny_cross_encoder(tmp_path / "other-ce", seed=1)  # other weights, other key
    third = _reranker(other, "onnx", tmp_path)
    assert third.export is not None
    assert not third.export.reused
    assert third.export.path != first.export.path
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("cross-encoder-")]) == 2


@pytest.mark.parametrize("damage", ["truncate model", "drop manifest", "drop model"])
def test_a_damaged_export_is_made_again(cross_encoder: Path, tmp_path: Path, damage: str) -> None:
    first = _reranker(cross_encoder, "onnx", tmp_path)
    assert first.export is not None
    entry = first.export.path.parent
    if damage == "truncate model":
        data = (entry / MODEL_FILE).read_bytes()
        (entry / MODEL_FILE).write_bytes(data[: len(data) // 2])
    elif damage == "drop manifest":
        (entry / MANIFEST_FILE).unlink()
    else:
        (entry / MODEL_FILE).unlink()
    again = _reranker(cross_encoder, "onnx", tmp_path)
    assert again.export is not None
    assert not again.export.reused
    assert again.export.path == first.export.path
    passages = [RerankCandidate("refunds reach the card", "a"), RerankCandidate("GPU", "b")]
    reference = _reranker(cross_encoder, "torch", tmp_path).score("refund", passages)
    assert again.score("refund", passages) == pytest.approx(reference, abs=1e-5)


def test_no_onnxruntime_falls_back_to_torch(
    cross_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trivium.retriever.search.rerank as rerank

    monkeypatch.setattr(rerank, "onnxruntime_available", lambda: False)
    reranker = _reranker(cross_encoder, "onnx", tmp_path)
    assert reranker.backend == "torch"
    assert reranker.export is None
    assert not any(tmp_path.iterdir())
