"""Shadow entries (a variant name or a road) as the arms they run, minus the caller's own."""

from __future__ import annotations

from trivium.gateway.policy.model import Arm, Feature, Limits, Retrieval, Variant

RETRIEVAL = Retrieval(collection="kb", k=3)


def feature(*shadow: str) -> Feature:
    return Feature(
        route="prompt",
        upstream="hosted",
        template="ask@production",
        retrieval=RETRIEVAL,
        limits=Limits(max_tokens=64),
        variants={
            "main": Variant(weight=1.0),
            "challenger": Variant(weight=0.0, upstream="backup", template="ask@canary"),
        },
        shadow=shadow,
    )


def test_a_variant_entry_runs_that_variant() -> None:
    f = feature("challenger")
    arms = list(f.shadow_arms(f.arm("support", "main")))
    assert arms == [
        (
            "challenger",
            Arm(
                feature="support",
                variant="challenger",
                route="prompt",
                template="ask@canary",
                adapter=None,
                retrieval=RETRIEVAL,
                upstream="backup",
                limits=Limits(max_tokens=64),
            ),
        )
    ]


def test_a_road_entry_runs_the_feature_on_that_road() -> None:
    f = feature("rag+prompt")
    [(name, arm)] = list(f.shadow_arms(f.arm("support", "main")))
    assert name == "rag+prompt"
    assert arm.route == "rag+prompt"
    # the feature's own settings, not the caller's variant
    assert arm.variant is None
    assert (arm.template, arm.upstream, arm.retrieval) == ("ask@production", "hosted", RETRIEVAL)


def test_both_kinds_keep_their_order() -> None:
    f = feature("rag", "challenger")
    names = [name for name, _ in list(f.shadow_arms(f.arm("support", "main")))]
    assert names == ["rag", "challenger"]


def test_the_callers_own_arm_is_skipped() -> None:
    f = feature("challenger", "rag")
    names = [name for name, _ in list(f.shadow_arms(f.arm("support", "challenger")))]
    assert names == ["rag"]
    # a road entry equal to the caller's arm (no variant, same road) is skipped too
    g = feature("prompt", "challenger")
    names = [name for name, _ in list(g.shadow_arms(g.arm("support")))]
    assert names == ["challenger"]


def test_no_shadow_entries_no_arms() -> None:
    f = feature()
    assert list(f.shadow_arms(f.arm("support", "main"))) == []
