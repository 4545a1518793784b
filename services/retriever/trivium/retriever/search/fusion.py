"""Weighted reciprocal rank fusion of the dense and sparse rankings.

score(d) = sum over roads of weight / (k + rank), rank counted from 0. With equal weights this
is exactly Qdrant's RRF. Qdrant's weighted form, 1 / ((rank + 1) / weight + k - 1), flattens
the rank differences of the heavier road at the usual k = 60, so a larger weight gives that road
less say in the order; fusing here keeps weights meaning what a PM expects.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("reciprocal_rank_fusion",)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], weights: Sequence[float], k: int
) -> list[tuple[str, float]]:
    """Ids with fused scores, best first; ties keep the order of first appearance."""
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
