"""Reciprocal rank fusion: with equal weights, exactly Qdrant's; weights shift the order."""

from __future__ import annotations

import random

import pytest
from qdrant_client.http import models
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion as qdrant_rrf

from trivium.retriever.search.fusion import reciprocal_rank_fusion


def _points(ids: list[str]) -> list[models.ScoredPoint]:
    return [models.ScoredPoint(id=i, version=0, score=1.0) for i in ids]


@pytest.mark.parametrize("seed", range(5))
def test_equal_weights_match_qdrants_rrf(seed: int) -> None:
    rng = random.Random(seed)
    pool = [f"{n:08d}-0000-0000-0000-000000000000" for n in range(60)]
    dense, sparse = rng.sample(pool, 40), rng.sample(pool, 40)
    ours = reciprocal_rank_fusion([dense, sparse], (1.0, 1.0), k=60)
    theirs = qdrant_rrf([_points(dense), _points(sparse)], limit=100, ranking_constant_k=60)
    assert [score for _, score in ours] == pytest.approx([p.score for p in theirs])
    assert {i for i, _ in ours} == {str(p.id) for p in theirs}


def test_a_heavier_road_decides_the_order() -> None:
    dense, sparse = ["a", "b", "c"], ["c", "b", "a"]
    assert reciprocal_rank_fusion([dense, sparse], (3.0, 1.0), k=60)[0][0] == "a"
    assert reciprocal_rank_fusion([dense, sparse], (1.0, 3.0), k=60)[0][0] == "c"


def test_an_item_on_both_roads_beats_one_on_a_single_road() -> None:
    fused = reciprocal_rank_fusion([["x", "both"], ["both", "y"]], (1.0, 1.0), k=60)
    assert fused[0][0] == "both"
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 60)


def test_one_weight_per_ranking() -> None:
    with pytest.raises(ValueError, match="one weight"):
        reciprocal_rank_fusion([["a"]], (1.0, 2.0), k=60)
