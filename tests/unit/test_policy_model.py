"""The policy file: validation into typed structs, every error named by its path, the hash."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from trivium.common.http.error_mapping import problem_from
from trivium.common.http.problems import problem_body
from trivium.gateway.policy import (
    ROADS,
    InvalidPolicyError,
    Policy,
    PolicyIssue,
    load_policy_file,
    parse_policy,
    policy_hash,
)
from trivium.gateway.policy.model import GpuPrice, TokenPrice

EXAMPLE = Path(__file__).parents[2] / "deploy" / "policy.example.yaml"

BASE: dict[str, Any] = {
    "version": 1,
    "upstreams": {"local": {"url": "http://127.0.0.1:8002/v1", "model": "base"}},
    "features": {
        "support-kb": {
            "route": "rag",
            "template": "support-answer@production",
            "upstream": "local",
            "retrieval": {"collection": "docs", "k": 5},
        }
    },
}


def policy_from(data: dict[str, Any]) -> Policy:
    return parse_policy(yaml.safe_dump(data), "test.yaml")


def issues_of(data: dict[str, Any] | str) -> list[PolicyIssue]:
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(text, "test.yaml")
    return list(caught.value.issues)


def with_changes(path: str, value: Any) -> dict[str, Any]:
    """BASE with `value` set at the dotted `path` (None deletes the key)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


def test_example_policy_is_valid_and_covers_every_road() -> None:
    policy = load_policy_file(EXAMPLE)
    features = policy.features
    assert {feature.route for feature in features.values()} == set(ROADS)
    assert any(feature.variants for feature in features.values())
    assert any(feature.shadow for feature in features.values())
    assert any(feature.fallback for feature in features.values())
    assert isinstance(policy.upstreams["hosted-small"].price, TokenPrice)
    assert isinstance(policy.upstreams["local-model"].price, GpuPrice)
    kb = features["support-kb"]
    assert kb.retrieval is not None
    assert (kb.retrieval.k, kb.retrieval.mode, kb.retrieval.rerank_top) == (5, "hybrid", 30)
    assert kb.arm("support-kb", "canary-template").template == "support-answer@canary"
    assert kb.arm("support-kb", "control").template == "support-answer@production"


def test_defaults_and_reference_normalisation() -> None:
    data = with_changes("features.support-kb.template", "support-answer")
    feature = policy_from(data).features["support-kb"]
    assert feature.template == "support-answer@production"
    assert feature.retrieval is not None
    assert feature.retrieval.mode == "hybrid"
    assert feature.retrieval.rerank is False
    assert feature.limits.max_tokens == 512
    pinned = policy_from(with_changes("features.support-kb.template", "support-answer@3"))
    assert pinned.features["support-kb"].template == "support-answer@3"


@pytest.mark.parametrize(
    ("path", "value", "error_path", "message"),
    [
        ("features.support-kb.retrieval.k", 500, "features.support-kb.retrieval.k",
         "must be between 1 and 100"),
        ("features.support-kb.retrieval.k", "five", "features.support-kb.retrieval.k",
         "must be an integer"),
        ("features.support-kb.retrieval.mode", "fuzzy", "features.support-kb.retrieval.mode",
         "must be one of: dense, sparse, hybrid"),
        ("features.support-kb.retrieval.rerank", "maybe", "features.support-kb.retrieval.rerank",
         "must be true or false"),
        ("features.support-kb.retrieval.min_groundedness", 1.5,
         "features.support-kb.retrieval.min_groundedness", "must be between 0 and 1"),
        ("features.support-kb.retrieval.on_fail", "withhold",
         "features.support-kb.retrieval.on_fail", "needs min_groundedness"),
        ("features.support-kb.retrieval.weights", {"dense": 1},
         "features.support-kb.retrieval.weights.sparse", "is required"),
        ("features.support-kb.retrieval.collection", None,
         "features.support-kb.retrieval.collection", "is required"),
        ("features.support-kb.route", "telepathy", "features.support-kb.route", "must be one of"),
        ("features.support-kb.route", None, "features.support-kb.route", "is required"),
        ("features.support-kb.template", "bad name@x", "features.support-kb.template",
         "invalid name"),
        ("features.support-kb.template", "a@@b", "features.support-kb.template",
         "malformed reference"),
        ("features.support-kb.upstream", "nowhere", "features.support-kb.upstream",
         "unknown upstream 'nowhere'"),
        ("features.support-kb.limits", {"timeout_s": 0}, "features.support-kb.limits.timeout_s",
         "must be above 0"),
        ("features.support-kb.surprise", 1, "features.support-kb.surprise",
         "unknown key 'surprise'"),
        ("features.support-kb.retrieval.topk", 3, "features.support-kb.retrieval.topk",
         "unknown key 'topk'"),
        ("features.Support_KB", {"route": "prompt"}, "features.Support_KB", "invalid name"),
        ("upstreams.local.url", "ftp://x", "upstreams.local.url", "http(s) URL"),
        ("upstreams.local.model", None, "upstreams.local.model", "is required"),
        ("upstreams.local.api_key_env", "not a var", "upstreams.local.api_key_env",
         "environment variable"),
        ("upstreams.local.price", {"prompt_per_1k": 0.1}, "upstreams.local.price.completion_per_1k",
         "is required"),
        ("upstreams.local.price", {"gpu_hour_usd": 2, "prompt_per_1k": 0.1},
         "upstreams.local.price.prompt_per_1k", "unknown key"),
        ("version", -1, "version", "non-negative integer"),
        ("owner", "pm", "owner", "unknown key 'owner'"),
    ],
)  # fmt: skip
def test_an_error_names_the_field(path: str, value: Any, error_path: str, message: str) -> None:
    issues = issues_of(with_changes(path, value))
    matching = [issue for issue in issues if issue.path == error_path]
    assert matching, issues
    assert message in matching[0].message


@pytest.mark.parametrize(
    ("route", "needs"),
    [
        ("prompt", ["template"]),
        ("rag", ["template", "retrieval"]),
        ("finetune", ["adapter"]),
        ("rag+prompt", ["template", "retrieval"]),
        ("finetune+rag", ["adapter", "retrieval"]),
    ],
)
def test_each_route_requires_what_it_uses(route: str, needs: list[str]) -> None:
    bare = {
        "upstreams": BASE["upstreams"],
        "features": {"f": {"route": route, "upstream": "local"}},
    }
    issues = issues_of(bare)
    assert [(issue.path, issue.message) for issue in issues] == [
        (f"features.f.{need}", f"required by route {route}") for need in needs
    ]
    complete = {
        "route": route,
        "upstream": "local",
        "template": "t@production",
        "adapter": "a@production",
        "retrieval": {"collection": "docs"},
    }
    assert policy_from({**bare, "features": {"f": complete}}).features["f"].route == route


def test_every_error_in_the_file_is_reported_at_once() -> None:
    data = copy.deepcopy(BASE)
    kb = data["features"]["support-kb"]
    kb["retrieval"]["k"] = 0
    kb["upstream"] = "gone"
    kb["colour"] = "blue"
    data["features"]["triage"] = {"route": "finetune", "upstream": "local"}
    with pytest.raises(InvalidPolicyError) as caught:
        policy_from(data)
    error = caught.value
    assert {issue.path for issue in error.issues} == {
        "features.support-kb.retrieval.k",
        "features.support-kb.upstream",
        "features.support-kb.colour",
        "features.triage.adapter",
    }
    problem = problem_body(problem_from(error))
    assert problem["status"] == 422
    assert problem["code"] == "invalid_policy"
    assert {"path": "features.support-kb.retrieval.k", "message": "must be between 1 and 100"} in (
        problem["errors"]
    )
    assert "features.triage.adapter: required by route finetune" in error.message


def test_variants_shadow_and_fallback_are_checked() -> None:
    data = copy.deepcopy(BASE)
    kb = data["features"]["support-kb"]
    kb["variants"] = {
        "control": {"weight": 50},
        "tuned": {"weight": 50, "route": "finetune+rag"},
        "rag": {"weight": 0},
    }
    kb["shadow"] = ["tuned", "finetune", "ghost"]
    kb["fallback"] = ["prompt", "rag", "finetune", "warp"]
    issues = {(issue.path, issue.message) for issue in issues_of(data)}
    assert issues == {
        (
            "features.support-kb.variants.tuned.adapter",
            "required by route finetune+rag (set it on the variant or on the feature)",
        ),
        ("features.support-kb.variants.rag", "a variant must not be named like a road"),
        (
            "features.support-kb.shadow[1]",
            "road finetune needs adapter, which the feature does not set",
        ),
        ("features.support-kb.shadow[2]", "unknown variant or road 'ghost'"),
        ("features.support-kb.fallback[1]", "is the feature's own route rag"),
        (
            "features.support-kb.fallback[2]",
            "road finetune needs adapter, which the feature does not set",
        ),
        (
            "features.support-kb.fallback[3]",
            "unknown road or variant 'warp'; roads: "
            "prompt, rag, finetune, rag+prompt, finetune+rag, extractive",
        ),
    }


def test_variant_overrides_must_name_a_known_upstream_and_weights_cannot_all_be_zero() -> None:
    data = copy.deepcopy(BASE)
    data["features"]["support-kb"]["variants"] = {
        "a": {"weight": 0, "upstream": "elsewhere"},
        "b": {"weight": 0, "retrieval": {"collection": "docs", "k": 101}},
    }
    paths = {issue.path for issue in issues_of(data)}
    assert paths == {
        "features.support-kb.variants.a.upstream",
        "features.support-kb.variants.b.retrieval.k",
        "features.support-kb.variants",
    }


def test_yaml_problems_are_errors_too() -> None:
    [syntax] = issues_of("features: [unclosed\n")
    assert syntax.path == "(file)"
    assert "not valid YAML" in syntax.message
    duplicated = "features:\n  a: {route: prompt}\n  a: {route: rag}\n"
    assert PolicyIssue("(file)", "line 3: duplicate key 'a'") in issues_of(duplicated)
    [not_mapping] = issues_of("- a list\n")
    assert (not_mapping.path, not_mapping.message) == ("(file)", "must be a mapping")


def test_characters_yaml_cannot_read_are_an_error_not_a_crash() -> None:
    # PyYAML checks the first characters while its loader is built, before parsing.
    for text in ("[\u009f", "a: \x07"):
        [unreadable] = issues_of(text)
        assert unreadable.path == "(file)"
        assert "not valid YAML" in unreadable.message


def test_an_empty_file_is_an_empty_policy() -> None:
    policy = parse_policy("", "empty.yaml")
    assert policy.features == {}
    assert policy.version is None


def test_hash_follows_meaning_not_formatting() -> None:
    plain = policy_from(BASE)
    explicit = copy.deepcopy(BASE)
    explicit["features"]["support-kb"]["retrieval"]["mode"] = "hybrid"  # the default
    explicit["features"]["support-kb"]["limits"] = {"max_tokens": 512}  # the default
    reordered = "# a comment\n" + yaml.safe_dump(explicit, sort_keys=False)
    assert policy_hash(parse_policy(reordered, "x.yaml")) == policy_hash(plain)
    changed = policy_from(with_changes("features.support-kb.retrieval.k", 6))
    assert policy_hash(changed) != policy_hash(plain)
    assert len(policy_hash(plain)) == 16


def test_cache_temperature_and_passage_length_are_read() -> None:
    data = copy.deepcopy(BASE)
    kb = data["features"]["support-kb"]
    kb["cache"] = {"ttl_s": 60}
    kb["temperature"] = 0.2
    kb["retrieval"]["max_passage_chars"] = 300
    feature = policy_from(data).features["support-kb"]
    assert feature.cache is not None
    assert feature.cache.ttl_s == 60
    assert feature.temperature == 0.2
    assert feature.retrieval is not None
    assert feature.retrieval.max_passage_chars == 300
    kb["cache"] = True
    cached = policy_from(data).features["support-kb"].cache
    assert cached is not None
    assert cached.ttl_s is None


def test_bad_cache_temperature_and_passage_length_name_their_field() -> None:
    data = copy.deepcopy(BASE)
    kb = data["features"]["support-kb"]
    kb["cache"] = {"ttl_s": 0, "size": 3}
    kb["temperature"] = 3
    kb["retrieval"]["max_passage_chars"] = 5
    kb["fallback"] = ["no-such-variant"]
    paths = {issue.path for issue in issues_of(data)}
    assert paths == {
        "features.support-kb.cache.ttl_s",
        "features.support-kb.cache.size",
        "features.support-kb.temperature",
        "features.support-kb.retrieval.max_passage_chars",
        "features.support-kb.fallback[0]",
    }


def test_a_fallback_variant_becomes_that_variants_arm() -> None:
    data = copy.deepcopy(BASE)
    kb = data["features"]["support-kb"]
    kb["variants"] = {"main": {"weight": 1}, "spare": {"weight": 0, "template": "spare@production"}}
    kb["fallback"] = ["spare", "prompt"]
    feature = policy_from(data).features["support-kb"]
    primary = feature.arm("support-kb", "main")
    spare = feature.fallback_arm("support-kb", "spare", primary)
    assert (spare.variant, spare.template) == ("spare", "spare@production")
    prompt = feature.fallback_arm("support-kb", "prompt", primary)
    assert (prompt.route, prompt.variant) == ("prompt", "main")
