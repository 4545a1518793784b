"""The semantic cache's policy block and the gateway's latency gate."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from trivium.gateway.invoke.schemas import InvokeResponse, Lineage, Timings, Usage
from trivium.gateway.invoke.semantic_cache import LatencyGate
from trivium.gateway.policy import InvalidPolicyError, parse_policy
from trivium.gateway.policy.document import DEFAULT_SEMANTIC_THRESHOLD

BASE: dict[str, Any] = {
    "upstreams": {"local": {"url": "http://127.0.0.1:8002/v1", "model": "base"}},
    "features": {"faq": {"route": "prompt", "template": "ask@production", "upstream": "local"}},
}


def with_cache(cache: Any) -> str:
    data = copy.deepcopy(BASE)
    data["features"]["faq"]["cache"] = cache
    return yaml.safe_dump(data)


def test_the_block_is_typed_with_defaults() -> None:
    policy = parse_policy(with_cache({"semantic": {}}), "p.yaml")
    cache = policy.features["faq"].cache
    assert cache is not None
    assert cache.semantic is not None
    assert cache.semantic.threshold == DEFAULT_SEMANTIC_THRESHOLD
    assert (cache.semantic.ttl_s, cache.semantic.max_entries, cache.semantic.text) == (
        None,
        10_000,
        None,
    )
    custom = parse_policy(
        with_cache({"ttl_s": 60, "semantic": {"threshold": 0.97, "ttl_s": 30, "text": "q"}}), "p"
    ).features["faq"]
    assert custom.cache is not None
    assert custom.cache.semantic is not None
    assert (custom.cache.semantic.threshold, custom.cache.semantic.ttl_s) == (0.97, 30)
    assert parse_policy(with_cache(True), "p").features["faq"].cache.semantic is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("semantic", "path"),
    [
        ({"threshold": 1.5}, "features.faq.cache.semantic.threshold"),
        ({"threshold": 0.2}, "features.faq.cache.semantic.threshold"),
        ({"ttl_s": 0}, "features.faq.cache.semantic.ttl_s"),
        ({"max_entries": 0}, "features.faq.cache.semantic.max_entries"),
        ({"text": "no spaces"}, "features.faq.cache.semantic.text"),
        ({"scope": "loose"}, "features.faq.cache.semantic.scope"),
    ],
)
def test_bad_values_are_refused_with_their_paths(semantic: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(with_cache({"semantic": semantic}), "p.yaml")
    assert [issue.path for issue in caught.value.issues] == [path]


def test_the_gate_skips_features_whose_upstream_beats_the_lookup() -> None:
    gate = LatencyGate(window=16, min_samples=4, probe_every=5)
    for _ in range(4):
        gate.lookup("fast", 20.0)
        gate.upstream("fast", 5.0)
        gate.lookup("slow", 20.0)
        gate.upstream("slow", 800.0)
    assert all(gate.worth_looking("slow") for _ in range(10))
    looked = [gate.worth_looking("fast") for _ in range(10)]
    assert looked.count(True) == 2  # only the probes, to keep measuring
    for _ in range(16):
        gate.upstream("fast", 100.0)  # the upstream slowed down: worth it again
    assert gate.worth_looking("fast")


def test_the_gate_looks_until_it_has_samples() -> None:
    gate = LatencyGate(min_samples=3)
    gate.lookup("f", 50.0)
    gate.upstream("f", 1.0)
    assert gate.worth_looking("f")


def test_cached_stays_a_bool_for_generated_and_exact_answers() -> None:
    import msgspec

    answer = InvokeResponse(
        "ans_1",
        "faq",
        "prompt",
        None,
        None,
        None,
        "hi",
        [],
        Usage(0, 0, 0),
        0.0,
        Timings(),
        Lineage("h"),
    )
    body = msgspec.json.decode(msgspec.json.encode(answer))
    assert body["cached"] is False
    assert "semantic_cache" not in body
    exact = msgspec.json.decode(msgspec.json.encode(msgspec.structs.replace(answer, cached=True)))
    assert exact["cached"] is True
