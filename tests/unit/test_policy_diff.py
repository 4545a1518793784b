"""`policy diff`: what a change does to traffic, with the exact share of users that move."""

from __future__ import annotations

import copy
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from trivium.gateway.policy import (
    assign_variant,
    diff_policies,
    load_policy_file,
    moved_share,
    parse_policy,
    staying_shares,
)
from trivium.gateway.policy.diff import OWN_ARM, ArmShare, Change, EntryChanges, FeatureDiff
from trivium.gateway.policy.model import Variant

DEPLOY = Path(__file__).parents[2] / "deploy"


def simulated_moved(old: dict[str, float], new: dict[str, float], keys: int) -> float:
    """The share of `keys` random users that `assign_variant` puts in another arm."""
    before = {name: Variant(weight=w) for name, w in old.items()}
    after = {name: Variant(weight=w) for name, w in new.items()}
    users = [f"user:{uuid.uuid4().hex}" for _ in range(keys)]
    moved = sum(
        assign_variant("f", before, user) != assign_variant("f", after, user) for user in users
    )
    return moved / keys


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 50, "b": 50}, {"a": 50, "b": 50}, Fraction(0)),
        ({"a": 90, "b": 10}, {"a": 70, "b": 30}, Fraction(1, 5)),  # only the change in share
        ({"a": 1, "b": 1}, {"a": 1, "b": 1, "c": 1}, Fraction(1, 3)),  # c takes its share
        ({"a": 80, "b": 20}, {"a": 50, "b": 30, "c": 20}, Fraction(11, 34)),
        ({"a": 1, "b": 3}, {"a": 3, "b": 1}, Fraction(1, 2)),
        ({"a": 1}, {"b": 1}, Fraction(1)),
    ],
)
def test_moved_share_is_exact_and_matches_the_assignment(
    old: dict[str, float], new: dict[str, float], expected: Fraction
) -> None:
    assert moved_share(old, new) == expected
    keys = 20_000
    tolerance = 4 * (float(expected) * (1 - float(expected)) / keys) ** 0.5 + 1e-9
    assert abs(simulated_moved(old, new, keys) - float(expected)) <= tolerance


def test_staying_shares_follow_the_formula() -> None:
    # a stays: 1 / (1 + max(20/80, 30/50) + max(0, 20/50)) = 1/2
    # b stays: 1 / (max(80/20, 50/30) + 1 + max(0, 20/30)) = 3/17
    assert staying_shares({"a": 80, "b": 20}, {"a": 50, "b": 30, "c": 20}) == {
        "a": Fraction(1, 2),
        "b": Fraction(3, 17),
    }
    assert staying_shares({"a": 1, "b": 0}, {"a": 0, "b": 1}) == {}


def test_the_shipped_examples_diff_as_computed_by_hand() -> None:
    old = load_policy_file(DEPLOY / "policy.example.yaml")
    new = load_policy_file(DEPLOY / "policy.example.next.yaml")
    changes = diff_policies(old, new)
    assert (changes.old.version, changes.new.version) == (7, 8)
    assert changes.upstreams == EntryChanges()
    assert changes.changed_upstreams == []
    by_name = {feature.feature: feature for feature in changes.features}
    assert list(by_name) == [
        "triage-with-context",
        "support-kb",
        "ticket-triage",
        "policy-qa",
        "release-notes",
    ]
    assert by_name["triage-with-context"] == FeatureDiff(
        "triage-with-context",
        "removed",
        routes=[Change("features.triage-with-context.route", "finetune+rag", None)],
    )
    assert by_name["release-notes"].status == "added"

    # support-kb 90/10 -> 70/30 (+ a weight-0 backup): 20% of users move, all from control.
    kb = by_name["support-kb"]
    assert kb.moved_share == pytest.approx(0.2, abs=1e-12)
    assert kb.arms == [
        ArmShare("control", 0.9, 0.7, pytest.approx(0.2), 0.0),  # type: ignore[arg-type]
        ArmShare("canary-template", 0.1, 0.3, 0.0, pytest.approx(0.2)),  # type: ignore[arg-type]
        ArmShare("local-backup", 0.0, 0.0, 0.0, 0.0),
    ]
    assert kb.variants == EntryChanges(added=["local-backup"])
    assert kb.fallback == EntryChanges(added=["local-backup"])
    assert kb.shadow == EntryChanges(removed=["canary-template"])
    assert kb.routes == kb.references == []

    # ticket-triage 80/20 -> 50/30/20: 1 - (1/2 + 3/17) = 11/34 of users move, more than
    # the 30% the shares alone change: the new arm takes users from both old ones.
    triage = by_name["ticket-triage"]
    assert triage.moved_share == pytest.approx(11 / 34, abs=1e-12)
    leaving = {arm.arm: (arm.left, arm.joined) for arm in triage.arms}
    assert leaving["adapter"] == pytest.approx((0.3, 0.0))
    assert leaving["prompt-baseline"] == pytest.approx((0.2 - 3 / 17, 0.3 - 3 / 17))
    assert leaving["adapter-v2"] == pytest.approx((0.0, 0.2))
    assert triage.fallback == EntryChanges(added=["prompt-baseline"])

    qa = by_name["policy-qa"]
    assert qa.moved_share == 0.0
    assert qa.arms == []
    assert qa.routes == [Change("features.policy-qa.route", "rag+prompt", "rag")]
    assert qa.references == [
        Change("features.policy-qa.template", "support-answer@3", "support-answer@4")
    ]
    assert qa.other_settings == ["retrieval"]


BASE: dict[str, Any] = {
    "upstreams": {
        "local": {"url": "http://127.0.0.1:8002/v1", "model": "base"},
        "hosted": {"url": "https://api.example.com/v1", "model": "chat"},
    },
    "features": {
        "triage": {
            "route": "finetune",
            "adapter": "triage-lora",
            "template": "triage",
            "upstream": "local",
        }
    },
}


def diff_of(**triage: Any) -> FeatureDiff:
    data = copy.deepcopy(BASE)
    data["features"]["triage"].update(triage)
    old = parse_policy(yaml.safe_dump(BASE), "old")
    [feature] = diff_policies(old, parse_policy(yaml.safe_dump(data), "new")).features
    return feature


def test_adding_variants_moves_everyone_off_the_features_own_arm() -> None:
    feature = diff_of(variants={"a": {"weight": 1}, "b": {"weight": 3}})
    assert feature.moved_share == 1.0
    assert feature.arms == [
        ArmShare(OWN_ARM, 1.0, 0.0, 1.0, 0.0),
        ArmShare("a", 0.0, 0.25, 0.0, 0.25),
        ArmShare("b", 0.0, 0.75, 0.0, 0.75),
    ]
    assert feature.variants == EntryChanges(added=["a", "b"])


def test_reference_and_upstream_changes_name_their_paths() -> None:
    feature = diff_of(adapter="triage-lora@canary", upstream="hosted", fallback=["prompt"])
    assert feature.references == [
        Change("features.triage.adapter", "triage-lora@production", "triage-lora@canary")
    ]
    assert feature.upstreams == [Change("features.triage.upstream", "local", "hosted")]
    assert feature.fallback == EntryChanges(added=["prompt"])
    assert feature.moved_share == 0.0


def test_variant_level_changes_are_listed_per_variant() -> None:
    old_variants = {"a": {"weight": 1}, "b": {"weight": 1, "template": "triage@1"}}
    new_variants = {"a": {"weight": 1}, "b": {"weight": 1, "route": "prompt", "template": "t@2"}}
    data = copy.deepcopy(BASE)
    data["features"]["triage"]["variants"] = old_variants
    old = parse_policy(yaml.safe_dump(data), "old")
    data["features"]["triage"]["variants"] = new_variants
    data["features"]["triage"]["shadow"] = ["b"]
    [feature] = diff_policies(old, parse_policy(yaml.safe_dump(data), "new")).features
    assert feature.routes == [Change("features.triage.variants.b.route", None, "prompt")]
    assert feature.references == [Change("features.triage.variants.b.template", "triage@1", "t@2")]
    assert feature.shadow == EntryChanges(added=["b"])
    assert feature.moved_share == 0.0
    assert feature.arms == []


def test_identical_policies_have_no_feature_changes() -> None:
    policy = load_policy_file(DEPLOY / "policy.example.yaml")
    changes = diff_policies(policy, load_policy_file(DEPLOY / "policy.example.yaml"))
    assert changes.features == []
    assert changes.old == changes.new
