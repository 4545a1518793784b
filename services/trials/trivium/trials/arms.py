"""Which arms a feature can take in a trial, read from its entry in `GET /v1/policy`.

An arm is a road (the feature's base arm on that road) or a declared variant. A road is open
when the feature's entry names everything it needs (the same needs the gateway's policy checks:
`ROAD_NEEDS` in `trivium.gateway.policy.document`, repeated here because trials may not import
the gateway); variants are open as declared. By default a trial runs the framework's three
roads (`DEFAULT_ROADS`: prompt, rag, finetune) where open, the feature's own road, and every
variant; the other open roads (`rag+prompt`, `finetune+rag`, `extractive`) run when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from trivium.common.errors import InvalidInputError, NotFoundError

__all__ = (
    "ADAPTER_ROADS",
    "DEFAULT_ROADS",
    "RETRIEVAL_ROADS",
    "ROADS",
    "ROAD_NEEDS",
    "ArmSpec",
    "choose_arms",
    "feature_arms",
)

ROADS = ("prompt", "rag", "finetune", "rag+prompt", "finetune+rag", "extractive")
ROAD_NEEDS: dict[str, tuple[str, ...]] = {
    "prompt": ("template",),
    "rag": ("template", "retrieval"),
    "finetune": ("adapter",),
    "rag+prompt": ("template", "retrieval"),
    "finetune+rag": ("adapter", "retrieval"),
    "extractive": ("retrieval",),
}
ADAPTER_ROADS = frozenset({"finetune", "finetune+rag"})
"""Roads that serve the feature's (or its variant's) adapter."""
DEFAULT_ROADS = frozenset({"prompt", "rag", "finetune"})
"""The roads the decision is between; a trial runs those a feature can take unless told."""
RETRIEVAL_ROADS = frozenset({"rag", "rag+prompt", "finetune+rag", "extractive"})
"""Roads whose answers carry a groundedness score."""


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a trial: its name (a road or a variant), the road it runs, and the
    groundedness threshold its answers are held to (None off the retrieval roads)."""

    name: str
    road: str
    min_groundedness: float | None
    default: bool = True
    """Run when no arms are named (see DEFAULT_ROADS)."""
    adapter: str | None = None
    """The adapter reference it serves (`name@label`, `name@3`), on the adapter roads only."""
    upstream: str | None = None
    """The upstream it calls (its price prices a fine-tune's training hour)."""


def feature_arms(policy: Mapping[str, Any], feature: str) -> list[ArmSpec]:
    """Every arm `feature` can take under `policy` (the JSON of `GET /v1/policy`): its open
    roads in the gateway's road order, then its variants in declared order."""
    entry = (policy.get("features") or {}).get(feature)
    if not isinstance(entry, Mapping):
        known = ", ".join(sorted(policy.get("features") or {})) or "none"
        raise NotFoundError(
            f"the gateway's policy has no feature {feature!r} (features: {known})", field="feature"
        )
    arms = [
        ArmSpec(
            road,
            road,
            _threshold(road, entry.get("retrieval")),
            road in DEFAULT_ROADS,
            _adapter(road, entry.get("adapter")),
            entry.get("upstream"),
        )
        for road in ROADS
        if all(entry.get(need) is not None for need in ROAD_NEEDS[road])
    ]
    own = entry.get("route")
    arms = [replace(arm, default=True) if arm.name == own else arm for arm in arms]
    for name, variant in (entry.get("variants") or {}).items():
        road = variant.get("route") or entry["route"]
        retrieval = variant.get("retrieval") or entry.get("retrieval")
        adapter = _adapter(road, variant.get("adapter") or entry.get("adapter"))
        upstream = variant.get("upstream") or entry.get("upstream")
        arms.append(ArmSpec(name, road, _threshold(road, retrieval), True, adapter, upstream))
    return arms


def choose_arms(available: Sequence[ArmSpec], requested: Sequence[str] | None) -> list[ArmSpec]:
    """`requested` (in that order, without repeats), or the default arms when None."""
    if not requested:
        return [arm for arm in available if arm.default]
    by_name = {arm.name: arm for arm in available}
    unknown = [name for name in requested if name not in by_name]
    if unknown:
        raise InvalidInputError(
            f"the feature cannot take arm(s) {', '.join(unknown)}; "
            f"its arms: {', '.join(by_name) or 'none'}",
            field="arms",
        )
    return [by_name[name] for name in dict.fromkeys(requested)]


def _threshold(road: str, retrieval: Any) -> float | None:
    if road not in RETRIEVAL_ROADS or not isinstance(retrieval, Mapping):
        return None
    value = retrieval.get("min_groundedness")
    return float(value) if value is not None else None


def _adapter(road: str, adapter: Any) -> str | None:
    return adapter if road in ADAPTER_ROADS and isinstance(adapter, str) else None
