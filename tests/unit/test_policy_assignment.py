"""Sticky variant assignment: the split follows the weights, keys stay put, changes move little."""

from __future__ import annotations

from collections import Counter

import pytest

from trivium.gateway.policy import assign_variant, assignment_key
from trivium.gateway.policy.model import Variant

KEYS = [f"user:{n}" for n in range(10_000)]


def variants(**weights: float) -> dict[str, Variant]:
    return {name: Variant(weight=weight) for name, weight in weights.items()}


def assign_all(arms: dict[str, Variant], feature: str = "support-kb") -> dict[str, str | None]:
    return {key: assign_variant(feature, arms, key) for key in KEYS}


@pytest.mark.parametrize(
    "weights",
    [
        {"control": 90, "canary": 10},
        {"a": 50, "b": 25, "c": 25},
        {"a": 0.7, "b": 0.2, "c": 0.1},
        {"only": 3},
    ],
)
def test_split_over_10k_keys_follows_the_weights(weights: dict[str, float]) -> None:
    counts = Counter(assign_all(variants(**weights)).values())
    total = sum(weights.values())
    assert set(counts) == set(weights)
    for name, weight in weights.items():
        assert abs(counts[name] / len(KEYS) - weight / total) <= 0.02, (name, counts)


def test_a_key_always_gets_the_same_variant_whatever_the_file_order() -> None:
    arms = variants(a=40, b=30, c=30)
    first = assign_all(arms)
    assert assign_all(arms) == first
    assert assign_all(dict(reversed(arms.items()))) == first
    assert len(set(first.values())) == 3


def test_raising_one_weight_moves_only_its_share_and_only_towards_it() -> None:
    before = assign_all(variants(control=90, canary=10))
    after = assign_all(variants(control=80, canary=20))
    moved = [(before[key], after[key]) for key in KEYS if before[key] != after[key]]
    assert set(moved) == {("control", "canary")}
    assert abs(len(moved) / len(KEYS) - 0.10) <= 0.015


def test_lowering_one_weight_leaves_the_other_variants_keys_alone() -> None:
    before = assign_all(variants(a=50, b=25, c=25))
    after = assign_all(variants(a=25, b=25, c=25))
    moved = Counter((before[key], after[key]) for key in KEYS if before[key] != after[key])
    assert set(moved) == {("a", "b"), ("a", "c")}
    # a's share falls from 1/2 to 1/3: exactly that sixth of the keys moves, nothing else.
    assert abs(sum(moved.values()) / len(KEYS) - 1 / 6) <= 0.015


def test_adding_a_variant_only_takes_keys_for_itself() -> None:
    before = assign_all(variants(a=50, b=50))
    after = assign_all(variants(a=50, b=50, c=100))
    moved = {(before[key], after[key]) for key in KEYS if before[key] != after[key]}
    assert moved == {("a", "c"), ("b", "c")}


def test_features_split_users_independently() -> None:
    arms = variants(a=50, b=50)
    one, other = assign_all(arms, "feature-one"), assign_all(arms, "feature-two")
    same = sum(one[key] == other[key] for key in KEYS) / len(KEYS)
    assert abs(same - 0.5) <= 0.03


def test_zero_weight_and_no_variants() -> None:
    assert set(assign_all(variants(on=1, off=0)).values()) == {"on"}
    assert assign_variant("f", {}, "user:1") is None


def test_the_key_is_the_user_else_the_session_else_random() -> None:
    assert assignment_key("u1", "s1") == "user:u1"
    assert assignment_key(None, "s1") == "session:s1"
    assert assignment_key("", "s1") == "session:s1"
    first, second = assignment_key(None, None), assignment_key(None, None)
    assert first.startswith("request:")
    assert first != second
    assert assignment_key("x", None) != assignment_key(None, "x")
