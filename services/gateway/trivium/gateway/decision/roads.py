"""Which road each arm of a trial runs, and where each road stands on the staged path."""

from __future__ import annotations

from collections.abc import Iterable

from trivium.common.contracts.decision import Stage
from trivium.gateway.policy.model import ROADS, Feature

__all__ = ("ADAPTER_ROADS", "RETRIEVAL_ROADS", "STAGE_OF", "arm_roads", "arms_on")

RETRIEVAL_ROADS = frozenset({"rag", "rag+prompt", "finetune+rag", "extractive"})
"""Roads that answer from retrieved passages, which they can cite and be verified against."""
ADAPTER_ROADS = frozenset({"finetune", "finetune+rag"})
"""Roads that run a fine-tuned adapter."""
STAGE_OF: dict[str, Stage] = {
    "prompt": "prompt",
    "rag": "rag",
    "rag+prompt": "rag",
    "extractive": "rag",
    "finetune": "finetune",
    "finetune+rag": "hybrid",
}


def arm_roads(feature: Feature, arms: Iterable[str]) -> dict[str, str | None]:
    """An arm named like a road runs that road; a variant runs its route (else the feature's);
    an arm the policy no longer has is None."""
    roads: dict[str, str | None] = {}
    for arm in arms:
        if arm in ROADS:
            roads[arm] = arm
        elif arm in feature.variants:
            roads[arm] = feature.variants[arm].route or feature.route
        else:
            roads[arm] = None
    return roads


def arms_on(roads: dict[str, str | None], wanted: frozenset[str]) -> list[str]:
    return [arm for arm, road in roads.items() if road in wanted]
