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
from fractions import Fraction

from trivium.gateway.policy.model import Variant

__all__ = ("assign_variant", "assignment_key", "staying_shares")

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


def staying_shares(old: Mapping[str, float], new: Mapping[str, float]) -> dict[str, Fraction]:
    """For each variant, the exact share of all keys that `assign_variant` puts in it under
    both the `old` and the `new` weights (variant name -> weight; absent means 0).

    Each key draws X_i = -ln(u_i) per variant, independent Exp(1) (u_i is the key's uniform
    hash for variant i), and goes to the variant with the smallest X_i / w_i. The hashes do not
    depend on the weights, so a key stays in j exactly when X_i > X_j * m_i for every other i,
    with m_i = max(w_i / w_j, w'_i / w'_j). Given X_j = x that has probability
    exp(-x * sum m_i); over x ~ Exp(1) it integrates to 1 / sum_i m_i (m_j = 1 included).
    Exact in rational arithmetic on the weights, for a hash that is uniform over keys.
    """
    staying: dict[str, Fraction] = {}
    for name in old.keys() & new.keys():
        before, after = Fraction(old[name]), Fraction(new[name])
        if before <= 0 or after <= 0:
            continue
        ratios = sum(
            (
                max(Fraction(old.get(other, 0)) / before, Fraction(new.get(other, 0)) / after)
                for other in old.keys() | new.keys()
            ),
            Fraction(0),
        )
        staying[name] = 1 / ratios
    return staying
