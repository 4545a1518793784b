"""Which arms a feature can take, read from its `GET /v1/policy` entry."""

from __future__ import annotations

from typing import Any

import pytest

from trivium.common.errors import InvalidInputError, NotFoundError
from trivium.trials.arms import ArmSpec, choose_arms, feature_arms

RETRIEVAL = {"collection": "docs", "k": 4, "min_groundedness": 0.4}


def _policy(**feature: Any) -> dict[str, Any]:
    entry = {"route": "prompt", "upstream": "local", "template": None, "adapter": None}
    entry |= {"retrieval": None, "variants": {}} | feature
    return {"hash": "abc", "features": {"triage": entry}, "upstreams": {}}


def test_a_template_alone_opens_only_the_prompt_road() -> None:
    assert [a.name for a in feature_arms(_policy(template="t@production"), "triage")] == ["prompt"]


def test_every_road_whose_needs_the_entry_names_in_road_order_then_variants() -> None:
    policy = _policy(
        template="t@production",
        adapter="a@production",
        retrieval=RETRIEVAL,
        variants={
            "dense": {"weight": 0.5, "route": "rag", "retrieval": {"collection": "d"}},
            "short": {"weight": 0.5, "route": None, "template": "t2@1"},
        },
    )
    arms = feature_arms(policy, "triage")
    local: dict[str, Any] = {"upstream": "local"}
    adapter: dict[str, Any] = {"adapter": "a@production", "upstream": "local"}
    assert arms == [
        ArmSpec("prompt", "prompt", None, **local),
        ArmSpec("rag", "rag", 0.4, **local),
        ArmSpec("finetune", "finetune", None, **adapter),
        ArmSpec("rag+prompt", "rag+prompt", 0.4, default=False, **local),
        ArmSpec("finetune+rag", "finetune+rag", 0.4, default=False, **adapter),
        ArmSpec("extractive", "extractive", 0.4, default=False, **local),
        ArmSpec("dense", "rag", None, **local),  # its own retrieval block sets no threshold
        ArmSpec("short", "prompt", None, **local),  # the feature's road
    ]


def test_a_variant_serves_its_own_adapter_on_its_own_upstream() -> None:
    policy = _policy(
        route="finetune",
        adapter="a@production",
        variants={"next": {"weight": 1, "adapter": "a@3", "upstream": "gpu"}},
    )
    arms = {a.name: a for a in feature_arms(policy, "triage")}
    assert (arms["finetune"].adapter, arms["finetune"].upstream) == ("a@production", "local")
    assert (arms["next"].adapter, arms["next"].upstream) == ("a@3", "gpu")


def test_retrieval_without_a_template_opens_only_extractive() -> None:
    arms = feature_arms(_policy(route="extractive", retrieval=RETRIEVAL), "triage")
    assert [a.name for a in arms] == ["extractive"]
    assert [a.name for a in choose_arms(arms, None)] == ["extractive"]  # the feature's own road


def test_by_default_the_three_roads_the_feature_can_take_and_its_variants() -> None:
    policy = _policy(
        route="finetune",
        template="t@production",
        adapter="a@production",
        retrieval=RETRIEVAL,
        variants={"short": {"weight": 1, "route": None, "template": "t2@1"}},
    )
    chosen = choose_arms(feature_arms(policy, "triage"), None)
    assert [a.name for a in chosen] == ["prompt", "rag", "finetune", "short"]


def test_an_unknown_feature_is_named() -> None:
    with pytest.raises(NotFoundError, match=r"no feature .nope.*triage") as caught:
        feature_arms(_policy(template="t@1"), "nope")
    assert caught.value.field == "feature"


def test_requested_arms_keep_their_order_and_lose_repeats() -> None:
    available = feature_arms(_policy(template="t@1", adapter="a@1"), "triage")
    chosen = choose_arms(available, ["finetune", "prompt", "finetune"])
    assert [a.name for a in chosen] == ["finetune", "prompt"]
    assert choose_arms(available, None) == available


def test_an_arm_the_feature_cannot_take_is_refused_naming_arms() -> None:
    available = feature_arms(_policy(template="t@1"), "triage")
    with pytest.raises(InvalidInputError, match=r"rag.*its arms: prompt") as caught:
        choose_arms(available, ["prompt", "rag"])
    assert caught.value.field == "arms"
