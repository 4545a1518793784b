"""The warning rules: legal settings that are likely mistakes, each named by its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from trivium.gateway.policy import PolicyIssue, check_policy, lint, parse_policy

DEPLOY = Path(__file__).parents[2] / "deploy"

BASE: dict[str, Any] = {
    "upstreams": {
        "local": {"url": "http://127.0.0.1:8002/v1", "model": "base"},
        "hosted": {"url": "https://api.example.com/v1", "model": "chat"},
    },
    "features": {
        "kb": {
            "route": "rag",
            "template": "answer@production",
            "upstream": "local",
            "retrieval": {"collection": "docs"},
        }
    },
}


def warnings(**kb: Any) -> list[tuple[str, str]]:
    data = copy.deepcopy(BASE)
    data["features"]["kb"].update(kb)
    policy = parse_policy(yaml.safe_dump(data), "test.yaml")
    return [(issue.path, issue.message) for issue in lint(policy)]


def test_a_plain_policy_has_no_warnings() -> None:
    assert warnings() == []


def test_a_zero_weight_variant_nothing_runs_is_a_warning() -> None:
    found = warnings(variants={"main": {"weight": 1}, "idle": {"weight": 0}})
    assert found == [
        (
            "features.kb.variants.idle.weight",
            "is 0 and no fallback or shadow entry names this variant: only a trial runs it",
        )
    ]


def test_a_zero_weight_variant_used_by_a_fallback_or_a_shadow_is_fine() -> None:
    backup = {"weight": 0, "upstream": "hosted"}
    variants = {"main": {"weight": 1}, "backup": backup}
    assert warnings(variants=variants, fallback=["backup"]) == []
    assert warnings(variants=variants, shadow=["backup"]) == []


def test_a_fallback_chain_all_on_the_roads_upstream_is_a_warning() -> None:
    [(path, message)] = warnings(fallback=["prompt"])
    assert path == "features.kb.fallback"
    assert message.startswith("every fallback runs on upstream 'local' too")


def test_one_fallback_on_another_upstream_is_enough() -> None:
    variants = {"main": {"weight": 1}, "remote": {"weight": 0, "upstream": "hosted"}}
    assert warnings(variants=variants, fallback=["prompt", "remote"]) == []


def test_the_fallback_rule_looks_at_each_arm_that_serves_traffic() -> None:
    # `away` runs on hosted: its fallback to `main` (local) survives hosted's death, but
    # `main`'s only fallback is the prompt road on its own upstream.
    variants = {"main": {"weight": 1}, "away": {"weight": 1, "upstream": "hosted"}}
    [(path, message)] = warnings(variants=variants, fallback=["prompt", "main"])
    assert path == "features.kb.fallback"
    assert message.startswith("variant main: every fallback runs on upstream 'local' too")


def test_an_arm_whose_fallbacks_all_collapse_into_itself_has_no_chain_to_warn_about() -> None:
    variants = {"main": {"weight": 1}, "plain": {"weight": 1, "route": "prompt"}}
    found = warnings(variants=variants, fallback=["prompt"])
    assert [message.split(":")[0] for _, message in found] == ["variant main"]


def test_withhold_and_hold_warn_no_more_now_that_the_review_queue_keeps_them() -> None:
    for on_fail in ("withhold", "hold"):
        kb = {"collection": "docs", "min_groundedness": 0.5, "on_fail": on_fail}
        assert warnings(retrieval=kb) == []


def test_the_shipped_examples_warnings() -> None:
    example = check_policy((DEPLOY / "policy.example.yaml").read_bytes(), "example")
    assert [issue.path for issue in example.warnings] == [
        "features.support-kb.fallback",
        "features.ticket-triage.fallback",
        "features.triage-with-context.fallback",
    ]
    assert example.warnings[0].message.startswith("variants control, canary-template: ")
    following = check_policy((DEPLOY / "policy.example.next.yaml").read_bytes(), "next")
    assert following.warnings == []
    assert following.report().warnings == []
    assert following.report([PolicyIssue("x", "y")]).valid is False
