"""The re-ranker: the same scores as CrossEncoder.predict, cached, bounded, thread-safe."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from trivium.retriever.rerank import RerankCandidate, Reranker, RerankerLoadError

PASSAGES = [
    "Refunds reach the card within five business days.",
    "Reset the password from the login page; the link expires after an hour. " * 6,
    "GPU",
    "The model service runs vLLM with LoRA adapters loaded at run time, batching requests.",
]


def _candidates() -> list[RerankCandidate]:
    return [RerankCandidate(text, f"key-{i}") for i, text in enumerate(PASSAGES)]


def test_scores_equal_predict_in_input_order(tiny_cross_encoder: Path) -> None:
    reference = CrossEncoder(str(tiny_cross_encoder), max_length=256)
    expected = reference.predict([("refund", p) for p in PASSAGES], show_progress_bar=False)
    scores = Reranker(tiny_cross_encoder, batch_size=2).score("refund", _candidates())
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)


def test_cache_hits_give_identical_scores_and_stay_bounded(tiny_cross_encoder: Path) -> None:
    reranker = Reranker(tiny_cross_encoder, cache_size=3)
    first = reranker.score("refund", _candidates())
    assert reranker.cache_info() == (0, 4, 3)
    again = reranker.score("refund", _candidates()[-3:])
    assert again == first[-3:]
    assert reranker.cache_info() == (3, 4, 3)
    reranker.score("another query", _candidates()[:1])
    assert reranker.cache_info()[2] == 3


def test_no_candidates_no_work(tiny_cross_encoder: Path) -> None:
    reranker = Reranker(tiny_cross_encoder)
    assert reranker.score("q", []) == []
    assert reranker.cache_info() == (0, 0, 0)


def test_concurrent_calls_match_sequential(tiny_cross_encoder: Path) -> None:
    reranker = Reranker(tiny_cross_encoder, cache_size=0)
    queries = [f"query {n}" for n in range(8)]
    sequential = [reranker.score(q, _candidates()) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda q: reranker.score(q, _candidates()), queries))
    for got, want in zip(concurrent, sequential, strict=True):
        assert got == pytest.approx(want, abs=1e-6)


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RerankerLoadError, match=r"config\.json missing"):
        Reranker(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(RerankerLoadError, match=re.escape(str(tmp_path / "broken"))):
        Reranker(tmp_path / "broken")
