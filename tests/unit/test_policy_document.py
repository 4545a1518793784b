"""The policy file model (one class per road) and its second stage, the cross-references."""

from __future__ import annotations

import ast
import copy
import inspect
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import trivium.gateway.policy.loader as loader_module
from trivium.gateway.policy import InvalidPolicyError, PolicyIssue, parse_policy
from trivium.gateway.policy.document import ROAD_NEEDS, PolicyFile

EXAMPLE = Path(__file__).parents[2] / "deploy" / "policy.example.yaml"

BASE: dict[str, Any] = {
    "upstreams": {
        "local": {"url": "http://127.0.0.1:8002/v1", "model": "base"},
        "backup": {"url": "http://127.0.0.1:8003/v1", "model": "base"},
    },
    "features": {
        "kb": {
            "route": "rag",
            "template": "answer@production",
            "upstream": "local",
            "retrieval": {"collection": "docs"},
            "variants": {"main": {"weight": 1}, "spare": {"weight": 0, "upstream": "backup"}},
        }
    },
}


def issues_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(yaml.safe_dump(data), "test.yaml")
    return [(issue.path, issue.message) for issue in caught.value.issues]


def changed(**kb: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["features"]["kb"].update(kb)
    return data


def test_the_json_schema_generates_and_forbids_unknown_keys() -> None:
    schema = PolicyFile.model_json_schema()
    objects = [schema, *schema["$defs"].values()]
    assert all(
        definition.get("additionalProperties") is False
        for definition in objects
        if definition.get("type") == "object" and "properties" in definition
    )
    assert {"PromptFeature", "RagFeature", "FinetuneRagFeature"} <= set(schema["$defs"])
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(yaml.safe_load(EXAMPLE.read_text()))
    validator.validate({"features": {"f": {**BASE["features"]["kb"], "cache": True}}})
    unknown = copy.deepcopy(BASE)
    unknown["features"]["kb"]["colour"] = "blue"
    assert not validator.is_valid(unknown)
    unknown_top = {**BASE, "owner": "pm"}
    assert not validator.is_valid(unknown_top)


def test_each_road_class_requires_exactly_what_its_road_needs() -> None:
    assert ROAD_NEEDS == {
        "prompt": ("template",),
        "rag": ("template", "retrieval"),
        "finetune": ("adapter",),
        "rag+prompt": ("template", "retrieval"),
        "finetune+rag": ("adapter", "retrieval"),
        "extractive": ("retrieval",),
    }


def test_a_road_missing_its_need_is_named_by_its_path_without_the_tag() -> None:
    # a feature named like a road: only the union's tag is left out of the path
    data = {
        "upstreams": BASE["upstreams"],
        "features": {"rag": {"route": "rag", "upstream": "local"}},
    }
    assert issues_of(data) == [
        ("features.rag.template", "required by route rag"),
        ("features.rag.retrieval", "required by route rag"),
    ]


def test_an_unknown_key_inside_a_road_class_lists_the_keys_it_takes() -> None:
    [(path, message)] = issues_of(changed(adaptor="x@production"))
    assert path == "features.kb.adaptor"
    assert message.startswith("unknown key 'adaptor'; expected one of: route, upstream, template")


def test_an_unknown_key_in_a_price_names_the_price_kind_its_keys_chose() -> None:
    data = copy.deepcopy(BASE)
    data["upstreams"]["local"]["price"] = {"gpu_hour_usd": 2, "tokens_per_hour": 10, "x": 1}
    [(path, message)] = issues_of(data)
    assert path == "upstreams.local.price.x"
    assert message == "unknown key 'x'; expected one of: gpu_hour_usd, tokens_per_hour"


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"upstream": "gone"}, "features.kb.upstream",
         "unknown upstream 'gone' (upstreams: backup, local)"),
        ({"variants": {"a": {"weight": 1, "upstream": "gone"}}}, "features.kb.variants.a.upstream",
         "unknown upstream 'gone' (upstreams: backup, local)"),
        ({"template": "a@@b"}, "features.kb.template", "malformed reference"),
        ({"variants": {"a": {"weight": 1, "adapter": "Bad Name"}}},
         "features.kb.variants.a.adapter", "invalid name"),
        ({"variants": {"a": {"weight": 1, "route": "finetune"}}}, "features.kb.variants.a.adapter",
         "required by route finetune (set it on the variant or on the feature)"),
        ({"shadow": ["ghost"]}, "features.kb.shadow[0]", "unknown variant or road 'ghost'"),
        ({"shadow": ["spare", "spare"]}, "features.kb.shadow[1]", "repeats 'spare'"),
        ({"shadow": ["finetune"]}, "features.kb.shadow[0]",
         "road finetune needs adapter, which the feature does not set"),
        ({"fallback": ["ghost"]}, "features.kb.fallback[0]", "unknown road or variant 'ghost'"),
        ({"fallback": ["prompt", "prompt"]}, "features.kb.fallback[1]", "repeats 'prompt'"),
        ({"fallback": ["rag"]}, "features.kb.fallback[0]", "is the feature's own route rag"),
        ({"fallback": ["finetune+rag"]}, "features.kb.fallback[0]",
         "road finetune+rag needs adapter, which the feature does not set"),
    ],
)  # fmt: skip
def test_each_cross_reference_error_names_its_field(
    change: dict[str, Any], path: str, message: str
) -> None:
    [(got_path, got_message)] = issues_of(changed(**change))
    assert got_path == path
    assert message in got_message


def test_a_name_broken_in_its_own_entry_is_not_also_reported_unknown() -> None:
    data = changed(fallback=["spare"], shadow=["broken"])
    data["upstreams"]["backup"]["url"] = "ftp://nowhere"
    data["features"]["kb"]["variants"]["broken"] = {"weight": "heavy"}
    assert issues_of(data) == [
        ("upstreams.backup.url", "must be an http(s) URL with a host (got 'ftp://nowhere')"),
        ("features.kb.variants.broken.weight", "must be a number"),
    ]


def test_value_errors_come_first_then_cross_references_all_at_once() -> None:
    data = changed(upstream="gone", fallback=["ghost"], temperature=5)
    data["features"]["kb"]["retrieval"]["k"] = 0
    assert issues_of(data) == [
        ("features.kb.retrieval.k", "must be between 1 and 100"),
        ("features.kb.temperature", "must be between 0 and 2"),
        ("features.kb.upstream", "unknown upstream 'gone' (upstreams: backup, local)"),
        (
            "features.kb.fallback[0]",
            "unknown road or variant 'ghost'; roads: prompt, rag, finetune, rag+prompt, "
            "finetune+rag, extractive",
        ),
    ]


def test_retrieval_rules_that_tie_two_fields() -> None:
    retrieval = {"collection": "docs", "k": 10, "rerank": True, "rerank_top": 5}
    retrieval |= {"mode": "dense", "weights": {"dense": 1, "sparse": 1}}
    assert issues_of(changed(retrieval=retrieval)) == [
        ("features.kb.retrieval.rerank_top", "must be at least k (10): re-ranking picks k of them"),
        ("features.kb.retrieval.weights", "only apply to mode hybrid (mode is dense)"),
    ]


def test_loader_is_a_thin_shell_without_key_lists() -> None:
    tree = ast.parse(inspect.getsource(loader_module))
    constants = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Tuple | ast.List | ast.Set)
        and any(
            isinstance(item, ast.Constant) and isinstance(item.value, str)
            for item in node.value.elts
        )
        and not any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in getattr(node, "targets", [])
        )
    ]
    assert constants == []
    assert not [name for name in vars(loader_module) if name.endswith("_KEYS")]
    assert {"parse_policy", "load_policy_file"} <= set(vars(loader_module))


def test_duplicate_keys_are_still_errors_beside_the_others() -> None:
    text = yaml.safe_dump(changed(upstream="gone")) + "version: 1\nversion: 2\n"
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(text, "dup.yaml")
    assert caught.value.issues[0].path == "(file)"
    assert "duplicate key 'version'" in caught.value.issues[0].message
    assert (
        PolicyIssue("features.kb.upstream", "unknown upstream 'gone' (upstreams: backup, local)")
        in caught.value.issues
    )
