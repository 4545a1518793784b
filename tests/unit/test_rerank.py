"""The re-ranker: the same scores as CrossEncoder.predict, cached, bounded, thread-safe."""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from tests.support.tiny_cross_encoder import build_tiny_cross_encoder
from trivium.retriever.search.length_batches import length_batches as _length_batches
from trivium.retriever.search.rerank import (
    RerankCandidate,
    Reranker,
    RerankerLoadError,
)

MAX_LENGTH = 64  # short, for speed; one passage and one query run past it
# Lengths from one token to past max_length, interleaved so that length order != input order.
PASSAGES = [
    "Refunds reach the card within five business days.",
    "Reset the password from the login page; the link expires after an hour. " * 30,
    "GPU",
    "The model service runs vLLM with LoRA adapters loaded at run time, batching requests.",
    "Invoices are sent monthly. " * 8,
    "Crash on start-up after the update",
    "Billing questions go to the billing team, who answer within a day. " * 3,
    "ok",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("rerank") / "tiny-ce")


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> CrossEncoder:
    encoder: CrossEncoder = CrossEncoder(str(model_dir), max_length=MAX_LENGTH)
    return encoder


def _candidates(passages: list[str] = PASSAGES) -> list[RerankCandidate]:
    return [RerankCandidate(p, hashlib.sha256(p.encode()).hexdigest()) for p in passages]


def _predict(reference: CrossEncoder, query: str, passages: list[str] = PASSAGES) -> list[float]:
    scores = reference.predict([(query, p) for p in passages], show_progress_bar=False)
    return [float(s) for s in scores]


def test_model_name_is_the_directory_name(model_dir: Path) -> None:
    assert Reranker(model_dir, max_length=MAX_LENGTH).model_name == "tiny-ce"


@pytest.mark.parametrize(
    ("batch_size", "max_batch_tokens"), [(1, 2048), (3, 2048), (32, 2048), (32, 100)]
)
def test_scores_equal_predict_in_input_order(
    model_dir: Path, reference: CrossEncoder, batch_size: int, max_batch_tokens: int
) -> None:
    reranker = Reranker(
        model_dir, batch_size=batch_size, max_length=MAX_LENGTH, max_batch_tokens=max_batch_tokens
    )
    for query in ("refund to my card", "why does the app crash after the update " * 20):
        expected = _predict(reference, query)
        assert max(expected) - min(expected) > 0.05  # a model whose scores say something
        assert reranker.score(query, _candidates()) == pytest.approx(expected, abs=1e-4)


def test_batches_group_similar_lengths_within_both_limits() -> None:
    lengths = [50, 3, 20, 4, 21, 5, 49, 6]
    batches = _length_batches(lengths, batch_size=3, max_tokens=60)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert [[lengths[i] for i in batch] for batch in batches] == [
        [3, 4, 5],
        [6, 20],
        [21],
        [49],
        [50],
    ]


def test_one_candidate_and_a_reversed_list_keep_their_order(
    model_dir: Path, reference: CrossEncoder
) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH, cache_size=0)
    backwards = PASSAGES[::-1]
    assert reranker.score("refund", _candidates(backwards)) == pytest.approx(
        _predict(reference, "refund", backwards), abs=1e-4
    )
    assert reranker.score("refund", _candidates(PASSAGES[1:2])) == pytest.approx(
        _predict(reference, "refund", PASSAGES[1:2]), abs=1e-4
    )


def test_a_repeated_query_is_answered_from_the_cache(model_dir: Path) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH)
    first = reranker.score("refund", _candidates())
    assert reranker.cache_info() == (0, len(PASSAGES), len(PASSAGES))
    again = reranker.score("refund", _candidates())
    assert again == first
    assert reranker.cache_info() == (len(PASSAGES), len(PASSAGES), len(PASSAGES))
    reranker.score("another query", _candidates()[:2])
    assert reranker.cache_info() == (len(PASSAGES), len(PASSAGES) + 2, len(PASSAGES) + 2)
    reranker.clear_cache()
    assert reranker.score("refund", _candidates()) == first
    assert reranker.cache_info() == (len(PASSAGES), 2 * len(PASSAGES) + 2, len(PASSAGES))


def test_the_cache_keys_on_the_query_and_the_passage_key(model_dir: Path) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH)
    candidate = _candidates()[:1]
    refund = reranker.score("refund", candidate)
    crash = reranker.score("crash", candidate)
    assert refund != crash
    renamed = [RerankCandidate(PASSAGES[2], candidate[0].key)]
    assert reranker.score("refund", renamed) == refund  # the key, not the text, is the identity
    assert reranker.cache_info() == (1, 2, 2)


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(model_dir: Path) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH, cache_size=3)
    candidates = _candidates()
    reranker.score("refund", candidates[:3])
    reranker.score("refund", candidates[:1])  # candidate 0 is now the most recent
    reranker.score("refund", candidates[3:4])  # evicts candidate 1
    assert reranker.cache_info() == (1, 4, 3)
    reranker.score("refund", [candidates[0], candidates[2], candidates[3]])
    assert reranker.cache_info() == (4, 4, 3)
    reranker.score("refund", candidates[1:2])
    assert reranker.cache_info() == (4, 5, 3)
    reranker.score("a query that fills the cache again", candidates)
    assert reranker.cache_info()[2] == 3


def test_a_zero_cache_size_disables_the_cache(model_dir: Path) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH, cache_size=0)
    first = reranker.score("refund", _candidates())
    assert reranker.score("refund", _candidates()) == first
    assert reranker.cache_info() == (0, 2 * len(PASSAGES), 0)


def test_a_passage_repeated_in_one_call_is_scored_once(model_dir: Path) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH)
    candidates = _candidates()
    scores = reranker.score("refund", [candidates[0], candidates[1], candidates[0]])
    assert scores[0] == scores[2]
    assert reranker.cache_info() == (0, 2, 2)


def test_no_candidates_no_work(model_dir: Path) -> None:
    reranker = Reranker(model_dir, max_length=MAX_LENGTH)
    assert reranker.score("q", []) == []
    assert reranker.cache_info() == (0, 0, 0)


def test_concurrent_calls_match_sequential(model_dir: Path) -> None:
    sequential_reranker = Reranker(model_dir, batch_size=3, max_length=MAX_LENGTH, cache_size=0)
    queries = [f"query {n} " * (1 + 2 * n) for n in range(12)]
    sequential = [sequential_reranker.score(q, _candidates()) for q in queries]
    shared = Reranker(model_dir, batch_size=3, max_length=MAX_LENGTH, cache_size=5)
    with ThreadPoolExecutor(6) as pool:
        concurrent = list(pool.map(lambda q: shared.score(q, _candidates()), queries * 2))
    for got, want in zip(concurrent, sequential * 2, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    hits, misses, size = shared.cache_info()
    assert hits + misses == 2 * len(queries) * len(PASSAGES)
    assert size <= 5


def test_a_missing_directory_is_refused_at_construction(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(RerankerLoadError, match=re.escape(f"{missing}: no such directory")):
        Reranker(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RerankerLoadError, match=r"empty: config\.json missing"):
        Reranker(tmp_path / "empty")


def test_a_directory_with_a_broken_config_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(
        RerankerLoadError, match=re.escape(f"cannot load cross-encoder from {broken}")
    ):
        Reranker(broken)


def test_a_directory_without_weights_is_refused(model_dir: Path, tmp_path: Path) -> None:
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for path in model_dir.iterdir():
        if path.suffix != ".safetensors":
            (no_weights / path.name).write_bytes(path.read_bytes())
    with pytest.raises(RerankerLoadError, match=re.escape(str(no_weights))):
        Reranker(no_weights)
