"""A feature's arms: computed once at load, fallback and shadow entries by one resolver."""

from __future__ import annotations

import msgspec

from trivium.gateway.policy import Feature, parse_policy
from trivium.gateway.policy.model import Arm, Limits, Variant, entry_arm

POLICY = """\
upstreams:
  hosted: {url: "http://127.0.0.1:1/v1", model: m}
  backup: {url: "http://127.0.0.1:2/v1", model: m}
features:
  support:
    route: rag
    template: ask@production
    adapter: tuned@production
    upstream: hosted
    retrieval: {collection: kb}
    variants:
      main: {weight: 1}
      lora: {weight: 1, route: finetune+rag}
      spare: {weight: 0, upstream: backup}
    fallback: [spare, prompt, finetune+rag]
    shadow: [lora, prompt, rag]
"""


def loaded() -> Feature:
    return parse_policy(POLICY, "test.yaml").features["support"]


def test_arms_are_computed_once_at_load() -> None:
    feature = loaded()
    assert feature.arm("support", "lora") is feature.arm("support", "lora")
    primary = feature.arm("support", "main")
    assert feature.fallback_arms(primary) is feature.fallback_arms(primary)
    assert feature.shadow_arms(primary) is feature.shadow_arms(primary)


def test_the_precomputed_arms_are_not_part_of_the_feature() -> None:
    feature = loaded()
    fields = set(msgspec.json.decode(msgspec.json.encode(feature)))
    assert fields == set(Feature.__struct_fields__)
    rebuilt = msgspec.json.decode(msgspec.json.encode(feature), type=Feature)
    assert rebuilt == feature
    # a feature built in code computes the same arms on demand
    assert rebuilt.arm("support", "spare") == feature.arm("support", "spare")
    assert rebuilt.fallback_arms(feature.arm("support")) == feature.fallback_arms(
        feature.arm("support")
    )


def test_fallback_arms_resolve_roads_on_the_primary_and_variants_as_themselves() -> None:
    feature = loaded()
    lora = feature.arm("support", "lora")
    chain = feature.fallback_arms(lora)
    assert [(arm.variant, arm.route, arm.upstream) for arm in chain] == [
        ("spare", "rag", "backup"),
        ("lora", "prompt", "hosted"),
    ]  # `finetune+rag` would run the primary itself
    spare = feature.arm("support", "spare")
    assert [(arm.variant, arm.route) for arm in feature.fallback_arms(spare)] == [
        ("spare", "prompt"),
        ("spare", "finetune+rag"),
    ]  # `spare` is the primary


def test_shadow_arms_resolve_roads_on_the_features_own_arm_and_drop_the_primary() -> None:
    feature = loaded()
    own = feature.arm("support")
    assert [(name, arm.variant, arm.route) for name, arm in feature.shadow_arms(own)] == [
        ("lora", "lora", "finetune+rag"),
        ("prompt", None, "prompt"),
    ]  # `rag` would run the caller's own arm
    lora = feature.arm("support", "lora")
    assert [name for name, _ in feature.shadow_arms(lora)] == ["prompt", "rag"]


def test_one_resolver_serves_fallback_shadow_and_the_older_entry_points() -> None:
    feature = loaded()
    arms = {v: feature.arm("support", v) for v in (None, *feature.variants)}
    main = arms["main"]
    assert entry_arm("spare", main, arms) is arms["spare"]
    assert entry_arm("prompt", main, arms) == msgspec.structs.replace(main, route="prompt")
    for entry in feature.fallback:
        assert feature.fallback_arm("support", entry, main) == entry_arm(entry, main, arms)


def test_an_arm_not_precomputed_is_still_resolved() -> None:
    feature = Feature(
        route="prompt",
        upstream="hosted",
        template="ask@production",
        limits=Limits(max_tokens=64),
        variants={"b": Variant(weight=1.0, upstream="backup")},
        fallback=("b",),
    )
    primary = feature.arm("support")
    assert feature.fallback_arms(primary) == (
        Arm(
            feature="support",
            variant="b",
            route="prompt",
            template="ask@production",
            adapter=None,
            retrieval=None,
            upstream="backup",
            limits=Limits(max_tokens=64),
        ),
    )
