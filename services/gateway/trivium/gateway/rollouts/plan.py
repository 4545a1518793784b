"""Which rollouts the active policy declares, and the weights requests are assigned by.

The policy file is the source of truth: a rollout is a variant's `rollout:` block, keyed by
the hash of that variant (block included), so editing it starts a new rollout and removing it
ends it. The effective weights follow from the file and the controller's state alone: the
canary takes its step's percent of the feature's traffic, and the feature's other variants
share the rest in proportion to their file weights.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec

from trivium.gateway.policy.model import Feature, Policy, Rollout, Variant
from trivium.gateway.rollouts.state import RolloutState

__all__ = (
    "EffectiveWeights",
    "RolloutSpec",
    "effective_percent",
    "effective_weights",
    "feature_rollout",
    "rollout_specs",
    "weighted_variants",
)


class RolloutSpec(msgspec.Struct, frozen=True):
    feature: str
    variant: str
    id: str
    rollout: Rollout


class EffectiveWeights(msgspec.Struct, frozen=True):
    shares: dict[str, float]
    """Variant -> share of the feature's traffic now (0..1)."""
    why: str


def rollout_id(feature: str, variant: str, spec: Variant) -> str:
    encoded = msgspec.json.encode([feature, variant, spec], order="sorted")
    return hashlib.sha256(encoded).hexdigest()[:16]


def feature_rollout(name: str, feature: Feature) -> RolloutSpec | None:
    """The feature's rollout (a policy allows one per feature), if it has one."""
    for variant, spec in feature.variants.items():
        if spec.rollout is not None:
            return RolloutSpec(name, variant, rollout_id(name, variant, spec), spec.rollout)
    return None


def rollout_specs(policy: Policy) -> dict[tuple[str, str], RolloutSpec]:
    """Every rollout the policy declares, by (feature, variant)."""
    specs: dict[tuple[str, str], RolloutSpec] = {}
    for name, feature in policy.features.items():
        spec = feature_rollout(name, feature)
        if spec is not None:
            specs[(name, spec.variant)] = spec
    return specs


def effective_percent(spec: RolloutSpec, state: RolloutState | None) -> float:
    """The canary's percent now: its step's while running, paused or completed; 0 before
    the controller starts it (no state, or a state of an earlier block) and once it ended
    rolled back or aborted."""
    if state is None or state.id != spec.id or state.status in ("rolled_back", "aborted"):
        return 0.0
    return state.percent


def weighted_variants(feature: Feature, canary: str, percent: float) -> dict[str, Variant]:
    """The feature's variants with the weights assignment uses (the canary at `percent`,
    the others sharing 100 - percent by their file weights)."""
    others = {v: s.weight for v, s in feature.variants.items() if v != canary and s.weight > 0}
    total = sum(others.values())
    weights = {v: (100.0 - percent) * w / total if total else 0.0 for v, w in others.items()}
    weights[canary] = percent
    return {
        v: msgspec.structs.replace(s, weight=weights.get(v, 0.0))
        for v, s in feature.variants.items()
    }


def effective_weights(
    name: str,
    feature: Feature,
    spec: RolloutSpec | None,
    state: RolloutState | None,
) -> EffectiveWeights:
    """Each variant's share now, and why, from the file and the controller's state."""
    if spec is None:
        return EffectiveWeights(_shares(feature.variants), "the policy file's weights")
    variants = weighted_variants(feature, spec.variant, effective_percent(spec, state))
    return EffectiveWeights(_shares(variants), _why(feature, spec, state))


def _shares(variants: dict[str, Variant]) -> dict[str, float]:
    total = sum(v.weight for v in variants.values() if v.weight > 0)
    return {
        name: round(v.weight / total, 6) if total and v.weight > 0 else 0.0
        for name, v in variants.items()
    }


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _why(feature: Feature, spec: RolloutSpec, state: RolloutState | None) -> str:
    steps = spec.rollout.steps
    others = [v for v, s in feature.variants.items() if v != spec.variant and s.weight > 0]
    rest = ", ".join(f"{v} ({feature.variants[v].weight:g})" for v in others)
    share = f"{rest} share the rest by their file weights"
    if state is None or state.id != spec.id:
        return (
            f"{spec.variant}: rollout {spec.id} not started yet, 0% until the controller "
            f"starts it; {share}"
        )
    last = state.history[-1] if state.history else None
    if state.status in ("rolled_back", "aborted"):
        word = "rolled back" if state.status == "rolled_back" else "aborted"
        reason = f": {last.reason}" if last is not None else ""
        at = _when(last.at if last else state.step_started_at)
        return f"{spec.variant}: rollout {spec.id} {word} at {at}{reason}; 0%; {share}"
    where = f"step {state.step + 1} of {len(steps)} ({state.percent:g}%)"
    if state.status == "completed":
        return f"{spec.variant}: rollout {spec.id} completed at {where}; {share}"
    return (
        f"{spec.variant}: rollout {spec.id} {state.status} at {where} since "
        f"{_when(state.step_started_at)}; {share}"
    )
