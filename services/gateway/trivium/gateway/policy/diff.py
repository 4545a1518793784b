"""What a new policy changes for traffic, feature by feature (`trivium policy diff`).

Per feature: added or removed; road, upstream, template and adapter changes (the feature's
and its variants'); variants, fallback and shadow entries added or removed; and, when the
weights change, the exact share of users that move to another arm (`staying_shares`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Literal

import msgspec

from trivium.gateway.policy.assignment import staying_shares
from trivium.gateway.policy.model import Feature, Policy, Variant, policy_hash

__all__ = (
    "OWN_ARM",
    "ArmShare",
    "Change",
    "EntryChanges",
    "FeatureDiff",
    "PolicyDiff",
    "PolicySide",
    "diff_policies",
    "moved_share",
)

OWN_ARM = "(feature)"
"""The arm of a feature without variants (a variant name cannot contain parentheses)."""

_ASSIGNED = ("route", "upstream", "template", "adapter")
_OTHER_SETTINGS = ("retrieval", "limits", "callers", "cache", "temperature")


class Change(msgspec.Struct, frozen=True):
    path: str
    old: str | None
    new: str | None


class EntryChanges(msgspec.Struct, frozen=True):
    added: list[str] = []
    removed: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


class ArmShare(msgspec.Struct, frozen=True):
    """One arm's share of the feature's users before and after, and who leaves or joins it."""

    arm: str
    old_share: float
    new_share: float
    left: float
    """Share of all users that were in this arm and are in another one now."""
    joined: float
    """Share of all users that are in this arm now and were in another one."""


class FeatureDiff(msgspec.Struct, frozen=True):
    feature: str
    status: Literal["added", "removed", "changed"]
    routes: list[Change] = []
    """The feature's `route` and its variants' (an added feature: its route)."""
    upstreams: list[Change] = []
    references: list[Change] = []
    """Template and adapter references, the feature's and its variants'."""
    moved_share: float = 0.0
    """Share of the feature's users assigned to another arm than before (exact)."""
    arms: list[ArmShare] = []
    """Set when the assignment changes: every arm's share before and after."""
    variants: EntryChanges = EntryChanges()
    fallback: EntryChanges = EntryChanges()
    shadow: EntryChanges = EntryChanges()
    other_settings: list[str] = []
    """Changed settings that do not move traffic: retrieval, limits, callers, cache,
    temperature."""


class PolicySide(msgspec.Struct, frozen=True):
    hash: str
    version: int | None


class PolicyDiff(msgspec.Struct, frozen=True):
    old: PolicySide
    new: PolicySide
    upstreams: EntryChanges
    changed_upstreams: list[str]
    """Upstreams in both whose settings (URL, model, timeouts, price) differ."""
    features: list[FeatureDiff]
    """Only the features that differ: removed first, then in the new file's order."""


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    features = [
        FeatureDiff(name, "removed", routes=[Change(f"features.{name}.route", f.route, None)])
        for name, f in old.features.items()
        if name not in new.features
    ]
    for name, feature in new.features.items():
        before = old.features.get(name)
        if before is None:
            path = f"features.{name}.route"
            features.append(FeatureDiff(name, "added", routes=[Change(path, None, feature.route)]))
        elif msgspec.json.encode(before) != msgspec.json.encode(feature):
            features.append(_feature_diff(name, before, feature))
    return PolicyDiff(
        old=PolicySide(policy_hash(old), old.version),
        new=PolicySide(policy_hash(new), new.version),
        upstreams=_entries(old.upstreams, new.upstreams),
        changed_upstreams=[
            name
            for name, upstream in new.upstreams.items()
            if name in old.upstreams and old.upstreams[name] != upstream
        ],
        features=features,
    )


def moved_share(old: Mapping[str, float], new: Mapping[str, float]) -> Fraction:
    """The exact share of keys assigned to another arm when weights go from `old` to `new`."""
    return 1 - sum(staying_shares(old, new).values(), Fraction(0))


def _feature_diff(name: str, old: Feature, new: Feature) -> FeatureDiff:
    changes: dict[str, list[Change]] = {field: [] for field in _ASSIGNED}
    for field in _ASSIGNED:
        if getattr(old, field) != getattr(new, field):
            path = f"features.{name}.{field}"
            changes[field].append(Change(path, getattr(old, field), getattr(new, field)))
    for variant in _common(old, new):
        for field in _ASSIGNED:
            before, after = (
                getattr(old.variants[variant], field),
                getattr(new.variants[variant], field),
            )
            if before != after:
                path = f"features.{name}.variants.{variant}.{field}"
                changes[field].append(Change(path, before, after))
    old_weights, new_weights = _weights(old.variants), _weights(new.variants)
    moved = moved_share(old_weights, new_weights)
    return FeatureDiff(
        name,
        "changed",
        routes=changes["route"],
        upstreams=changes["upstream"],
        references=changes["template"] + changes["adapter"],
        moved_share=float(moved),
        arms=[] if old_weights == new_weights else _arm_shares(old_weights, new_weights),
        variants=_entries(old.variants, new.variants),
        fallback=_entries(old.fallback, new.fallback),
        shadow=_entries(old.shadow, new.shadow),
        other_settings=_other_settings(old, new),
    )


def _weights(variants: Mapping[str, Variant]) -> dict[str, float]:
    """Assignment weights by arm; a feature without variants sends everyone to its own arm."""
    if not variants:
        return {OWN_ARM: 1.0}
    return {name: variant.weight for name, variant in variants.items()}


def _arm_shares(old: Mapping[str, float], new: Mapping[str, float]) -> list[ArmShare]:
    staying = staying_shares(old, new)
    old_total = sum((Fraction(w) for w in old.values()), Fraction(0))
    new_total = sum((Fraction(w) for w in new.values()), Fraction(0))
    shares = []
    for arm in [*old, *(name for name in new if name not in old)]:
        before = Fraction(old.get(arm, 0)) / old_total
        after = Fraction(new.get(arm, 0)) / new_total
        kept = staying.get(arm, Fraction(0))
        shares.append(
            ArmShare(arm, float(before), float(after), float(before - kept), float(after - kept))
        )
    return shares


def _entries(old: Iterable[str], new: Iterable[str]) -> EntryChanges:
    before, after = list(old), list(new)
    return EntryChanges(
        added=[entry for entry in after if entry not in before],
        removed=[entry for entry in before if entry not in after],
    )


def _other_settings(old: Feature, new: Feature) -> list[str]:
    changed = [field for field in _OTHER_SETTINGS if getattr(old, field) != getattr(new, field)]
    variant_retrieval = any(
        old.variants[variant].retrieval != new.variants[variant].retrieval
        for variant in _common(old, new)
    )
    if variant_retrieval and "retrieval" not in changed:
        changed.append("retrieval")
    return changed


def _common(old: Feature, new: Feature) -> list[str]:
    """The variants in both, in the new file's order."""
    return [variant for variant in new.variants if variant in old.variants]
