"""Sticky variant assignment: one user (else session) always lands in the same variant.

Weighted rendezvous hashing: each variant draws a hash-seeded exponential with rate equal to
its weight, and the smallest draw wins, so variant i wins with probability w_i / sum(w).
Unlike cumulative intervals over [0, 1), changing one variant's weight only moves keys to or
from that variant (exactly the change in its share), and adding or removing a variant or
reordering the file moves no other key.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping

from trivium.gateway.policy.model import Variant

__all__ = ("assign_variant", "assignment_key")

_UNIT = 2.0**-53


def assignment_key(user: str | None, session: str | None) -> str:
    """The user, else the session, else a fresh random id (then nothing is sticky)."""
    if user:
        return f"user:{user}"
    if session:
        return f"session:{session}"
    return f"request:{uuid.uuid4().hex}"


def _unit_hash(feature: str, variant: str, key: str) -> float:
    """A stable uniform draw in (0, 1) for this feature, variant and key."""
    digest = hashlib.blake2b(f"{feature}\0{variant}\0{key}".encode(), digest_size=8).digest()
    return ((int.from_bytes(digest, "big") >> 11) + 0.5) * _UNIT


def assign_variant(feature: str, variants: Mapping[str, Variant], key: str) -> str | None:
    """The variant `key` belongs to; None when the feature has no variants."""
    best: str | None = None
    best_draw = math.inf
    for name, variant in variants.items():
        if variant.weight <= 0:
            continue
        draw = -math.log(_unit_hash(feature, name, key)) / variant.weight
        if draw < best_draw:
            best, best_draw = name, draw
    return best
