"""Policy YAML -> a validated `Policy`, or `InvalidPolicyError` listing every problem at once.

Validation walks the raw YAML by hand rather than decoding it with msgspec, because a
decoder stops at the first error and the product manager editing the file wants them all.
Each error carries the dotted path of the offending field (`features.support-kb.retrieval.k`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
import yaml

from trivium.common.errors import TriviumError
from trivium.gateway.policy.model import (
    MODES,
    ON_FAIL,
    ROADS,
    Feature,
    FusionWeights,
    GpuPrice,
    Limits,
    Policy,
    ResponseCache,
    Retrieval,
    Road,
    TokenPrice,
    Upstream,
    Variant,
)
from trivium.registry.errors import MalformedReferenceError
from trivium.registry.references import parse_reference

__all__ = ("InvalidPolicyError", "PolicyIssue", "load_policy_file", "parse_policy")

ROOT = "(file)"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
NAME_HINT = "use 1-63 of a-z 0-9 -, starting with a letter or digit"
COLLECTION = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

TOP_KEYS = ("version", "upstreams", "features")
UPSTREAM_KEYS = ("url", "model", "api_key_env", "connect_timeout_s", "read_timeout_s", "price")
TOKEN_PRICE_KEYS = ("prompt_per_1k", "completion_per_1k")
GPU_PRICE_KEYS = ("gpu_hour_usd", "tokens_per_hour")
FEATURE_KEYS = (
    "route",
    "template",
    "adapter",
    "retrieval",
    "upstream",
    "limits",
    "variants",
    "shadow",
    "fallback",
    "cache",
    "temperature",
)
VARIANT_KEYS = ("weight", "route", "template", "adapter", "retrieval", "upstream")
RETRIEVAL_KEYS = (
    "collection",
    "max_passage_chars",
    "k",
    "mode",
    "rerank",
    "rerank_top",
    "weights",
    "min_groundedness",
    "on_fail",
)
LIMITS_KEYS = ("max_input_chars", "max_tokens", "timeout_s")
CACHE_KEYS = ("ttl_s",)

T = TypeVar("T", bound=str)


class PolicyIssue(msgspec.Struct, frozen=True):
    path: str
    message: str


class InvalidPolicyError(TriviumError):
    """The policy file cannot be used; `issues` lists every problem found."""

    status_code = 422
    code = "invalid_policy"
    title = "Invalid policy"

    def __init__(self, source: str, issues: Sequence[PolicyIssue]) -> None:
        listing = "; ".join(f"{issue.path}: {issue.message}" for issue in issues)
        super().__init__(
            f"policy {source} is invalid ({len(issues)} error(s)): {listing}",
            field=issues[0].path,
            extra={"errors": [{"path": i.path, "message": i.message} for i in issues]},
        )
        self.issues = tuple(issues)


def load_policy_file(path: Path) -> Policy:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidPolicyError(str(path), [PolicyIssue(ROOT, f"cannot read: {exc}")]) from exc
    return parse_policy(text, str(path))


def parse_policy(text: str | bytes, source: str) -> Policy:
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise InvalidPolicyError(source, [PolicyIssue(ROOT, f"not valid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    reader = _Reader()
    reader.issues.extend(loader.duplicates)
    policy = _policy(reader, {} if data is None else data)
    if reader.issues:
        raise InvalidPolicyError(source, reader.issues)
    return policy


class _Loader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a twice-defined feature must be an error."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self.duplicates: list[PolicyIssue] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    line = key_node.start_mark.line + 1
                    self.duplicates.append(
                        PolicyIssue(ROOT, f"line {line}: duplicate key {key_node.value!r}")
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


class _Reader:
    """Typed field access on raw YAML that records an issue instead of raising.

    On an error each getter returns a stand-in of the right type, so checking goes on; the
    policy built from stand-ins is thrown away because `issues` is not empty.
    """

    def __init__(self) -> None:
        self.issues: list[PolicyIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(PolicyIssue(path, message))

    def mapping(self, value: object, path: str, allowed: Collection[str]) -> dict[str, Any] | None:
        """`value` if it is a mapping (its unknown keys reported), else None (reported)."""
        if not isinstance(value, dict):
            self.fail(path or ROOT, "must be a mapping")
            return None
        for key in value:
            if key not in allowed:
                self.fail(
                    _join(path, key), f"unknown key {key!r}; expected one of: {', '.join(allowed)}"
                )
        return value

    def string(
        self,
        raw: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str | None:
        value = raw.get(key)
        where = _join(path, key)
        if value is None:
            if required:
                self.fail(where, "is required")
            return None
        if not isinstance(value, str) or not value:
            self.fail(where, "must be a non-empty string")
            return str(value)
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(where, f"invalid value {value!r}: {hint}")
        return value

    def integer(
        self, raw: dict[str, Any], key: str, path: str, low: int, high: int, default: int | None
    ) -> int:
        """An integer in [low, high]; `default=None` makes it required."""
        value = raw.get(key)
        where = _join(path, key)
        if value is None:
            if default is None:
                self.fail(where, "is required")
            return low if default is None else default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, "must be an integer")
            return low
        if not low <= value <= high:
            self.fail(where, f"must be between {low} and {high}")
        return value

    def number(
        self,
        raw: dict[str, Any],
        key: str,
        path: str,
        low: float,
        high: float,
        default: float | None,
        *,
        above_low: bool = False,
    ) -> float:
        """A number in [low, high] (or (low, high]); `default=None` makes it required."""
        value = raw.get(key)
        where = _join(path, key)
        if value is None:
            if default is None:
                self.fail(where, "is required")
            return low if default is None else default
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.fail(where, "must be a number")
            return low
        if above_low and not low < value <= high:
            self.fail(where, f"must be above {low:g} and at most {high:g}")
        elif not low <= value <= high:
            self.fail(where, f"must be between {low:g} and {high:g}")
        return float(value)

    def boolean(self, raw: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(_join(path, key), "must be true or false")
            return default
        return value

    def choice(self, raw: dict[str, Any], key: str, path: str, options: tuple[T, ...]) -> T | None:
        value = raw.get(key)
        if value is None:
            return None
        if value not in options:
            self.fail(_join(path, key), f"must be one of: {', '.join(options)} (got {value!r})")
            return None
        return options[options.index(value)]

    def reference(self, raw: dict[str, Any], key: str, path: str) -> str | None:
        """A registry reference, normalised to `name@label` / `name@version`."""
        text = self.string(raw, key, path)
        if text is None:
            return None
        try:
            return str(parse_reference(text, field=key))
        except MalformedReferenceError as exc:
            self.fail(_join(path, key), exc.message)
            return text

    def names(self, raw: dict[str, Any], key: str, path: str) -> list[str]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(_join(path, key), "must be a list of names")
            return []
        for index, item in enumerate(value):
            if item in value[:index]:
                self.fail(f"{_join(path, key)}[{index}]", f"repeats {item!r}")
        return value


def _policy(reader: _Reader, data: object) -> Policy:
    top = reader.mapping(data, "", TOP_KEYS)
    if top is None:
        return Policy()
    version = top.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 0
    ):
        reader.fail("version", "must be a non-negative integer")
        version = None
    upstreams = {
        name: _upstream(reader, f"upstreams.{name}", body)
        for name, body in _named(reader, top.get("upstreams"), "upstreams").items()
    }
    features = {
        name: _feature(reader, name, body, upstreams.keys())
        for name, body in _named(reader, top.get("features"), "features").items()
    }
    return Policy(version=version, upstreams=upstreams, features=features)


def _named(reader: _Reader, value: object, path: str) -> dict[str, Any]:
    """A mapping of names to bodies; entries with invalid names are reported and dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        reader.fail(path, "must be a mapping of names")
        return {}
    valid = {}
    for name, body in value.items():
        if isinstance(name, str) and NAME.fullmatch(name):
            valid[name] = body
        else:
            reader.fail(_join(path, name), f"invalid name {name!r}: {NAME_HINT}")
    return valid


def _upstream(reader: _Reader, path: str, body: object) -> Upstream:
    raw = reader.mapping(body, path, UPSTREAM_KEYS)
    if raw is None:
        return Upstream(url="", model="")
    url = reader.string(raw, "url", path, required=True) or ""
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        reader.fail(f"{path}.url", f"must be an http(s) URL with a host (got {url!r})")
    return Upstream(
        url=url,
        model=reader.string(raw, "model", path, required=True) or "",
        api_key_env=reader.string(
            raw, "api_key_env", path, pattern=ENV_VAR, hint="the name of an environment variable"
        ),
        connect_timeout_s=reader.number(raw, "connect_timeout_s", path, 0, 60, 2.0, above_low=True),
        read_timeout_s=reader.number(raw, "read_timeout_s", path, 0, 3600, 60.0, above_low=True),
        price=_price(reader, f"{path}.price", raw.get("price")),
    )


def _price(reader: _Reader, path: str, body: object) -> TokenPrice | GpuPrice | None:
    if body is None:
        return None
    if isinstance(body, dict) and any(key in body for key in GPU_PRICE_KEYS):
        gpu = reader.mapping(body, path, GPU_PRICE_KEYS) or {}
        return GpuPrice(
            gpu_hour_usd=reader.number(gpu, "gpu_hour_usd", path, 0, 10_000, None),
            tokens_per_hour=reader.integer(gpu, "tokens_per_hour", path, 1, 10**12, None),
        )
    raw = reader.mapping(body, path, TOKEN_PRICE_KEYS)
    if raw is None:
        return None
    return TokenPrice(
        prompt_per_1k=reader.number(raw, "prompt_per_1k", path, 0, 1_000, None),
        completion_per_1k=reader.number(raw, "completion_per_1k", path, 0, 1_000, None),
    )


def _retrieval(reader: _Reader, path: str, body: object) -> Retrieval:
    raw = reader.mapping(body, path, RETRIEVAL_KEYS)
    if raw is None:
        return Retrieval(collection="")
    collection = reader.string(
        raw, "collection", path, required=True, pattern=COLLECTION, hint=NAME_HINT
    )
    issues_before = len(reader.issues)
    k = reader.integer(raw, "k", path, 1, 100, 5)
    k_ok = len(reader.issues) == issues_before
    mode = reader.choice(raw, "mode", path, MODES) or "hybrid"
    rerank = reader.boolean(raw, "rerank", path, False)
    rerank_top = reader.integer(raw, "rerank_top", path, 1, 1000, max(20, k))
    if rerank and k_ok and raw.get("rerank_top") is not None and rerank_top < k:
        reader.fail(f"{path}.rerank_top", f"must be at least k ({k}): re-ranking picks k of them")
    weights = None
    if raw.get("weights") is not None:
        if mode != "hybrid":
            reader.fail(f"{path}.weights", f"only apply to mode hybrid (mode is {mode})")
        weights = _weights(reader, f"{path}.weights", raw["weights"])
    min_groundedness = None
    if raw.get("min_groundedness") is not None:
        min_groundedness = reader.number(raw, "min_groundedness", path, 0, 1, None)
    on_fail = reader.choice(raw, "on_fail", path, ON_FAIL)
    if on_fail is not None and min_groundedness is None:
        reader.fail(f"{path}.on_fail", "needs min_groundedness")
    max_passage_chars = None
    if raw.get("max_passage_chars") is not None:
        max_passage_chars = reader.integer(raw, "max_passage_chars", path, 20, 100_000, None)
    return Retrieval(
        max_passage_chars=max_passage_chars,
        collection=collection or "",
        k=k,
        mode=mode,
        rerank=rerank,
        rerank_top=rerank_top,
        weights=weights,
        min_groundedness=min_groundedness,
        on_fail=on_fail or "flag",
    )


def _weights(reader: _Reader, path: str, body: object) -> FusionWeights | None:
    raw = reader.mapping(body, path, ("dense", "sparse"))
    if raw is None:
        return None
    return FusionWeights(
        dense=reader.number(raw, "dense", path, 0, 100, None, above_low=True),
        sparse=reader.number(raw, "sparse", path, 0, 100, None, above_low=True),
    )


def _limits(reader: _Reader, path: str, body: object) -> Limits:
    if body is None:
        return Limits()
    raw = reader.mapping(body, path, LIMITS_KEYS)
    if raw is None:
        return Limits()
    return Limits(
        max_input_chars=reader.integer(raw, "max_input_chars", path, 1, 1_000_000, 16_000),
        max_tokens=reader.integer(raw, "max_tokens", path, 1, 32_768, 512),
        timeout_s=reader.number(raw, "timeout_s", path, 0, 600, 30.0, above_low=True),
    )


def _cache(reader: _Reader, path: str, body: object) -> ResponseCache | None:
    """`cache: true` (the gateway's default TTL), `cache: {ttl_s: N}`, or absent/false: off."""
    if body is None or body is False:
        return None
    if body is True:
        return ResponseCache()
    raw = reader.mapping(body, path, CACHE_KEYS)
    if raw is None:
        return None
    return ResponseCache(ttl_s=reader.integer(raw, "ttl_s", path, 1, 7 * 24 * 3600, 0) or None)


def _upstream_ref(
    reader: _Reader, raw: dict[str, Any], path: str, upstreams: Collection[str], required: bool
) -> str | None:
    name = reader.string(raw, "upstream", path, required=required)
    if name is not None and name not in upstreams:
        known = ", ".join(sorted(upstreams)) or "none defined"
        reader.fail(f"{path}.upstream", f"unknown upstream {name!r} (upstreams: {known})")
    return name


def _variant(reader: _Reader, path: str, body: object, upstreams: Collection[str]) -> Variant:
    raw = reader.mapping(body, path, VARIANT_KEYS)
    if raw is None:
        return Variant(weight=1.0)
    retrieval = raw.get("retrieval")
    return Variant(
        weight=reader.number(raw, "weight", path, 0, 1_000_000, None),
        route=reader.choice(raw, "route", path, ROADS),
        template=reader.reference(raw, "template", path),
        adapter=reader.reference(raw, "adapter", path),
        retrieval=None if retrieval is None else _retrieval(reader, f"{path}.retrieval", retrieval),
        upstream=_upstream_ref(reader, raw, path, upstreams, required=False),
    )


def _variants(
    reader: _Reader, path: str, body: object, upstreams: Collection[str]
) -> dict[str, Variant]:
    if body is None:
        return {}
    if isinstance(body, dict) and not body:
        reader.fail(path, "must name at least one variant")
    variants = {}
    for name, variant_body in _named(reader, body, path).items():
        if name in ROADS:
            reader.fail(f"{path}.{name}", "a variant must not be named like a road")
        variants[name] = _variant(reader, f"{path}.{name}", variant_body, upstreams)
    if variants and not any(variant.weight > 0 for variant in variants.values()):
        reader.fail(path, "at least one weight must be above 0")
    return variants


def _feature(reader: _Reader, name: str, body: object, upstreams: Collection[str]) -> Feature:
    path = f"features.{name}"
    raw = reader.mapping(body, path, FEATURE_KEYS)
    if raw is None:
        return Feature(route="prompt", upstream="")
    route = reader.choice(raw, "route", path, ROADS)
    if route is None and raw.get("route") is None:
        reader.fail(f"{path}.route", f"is required (one of: {', '.join(ROADS)})")
    retrieval = raw.get("retrieval")
    feature = Feature(
        route=route or "prompt",
        upstream=_upstream_ref(reader, raw, path, upstreams, required=True) or "",
        template=reader.reference(raw, "template", path),
        adapter=reader.reference(raw, "adapter", path),
        retrieval=None if retrieval is None else _retrieval(reader, f"{path}.retrieval", retrieval),
        limits=_limits(reader, f"{path}.limits", raw.get("limits")),
        variants=_variants(reader, f"{path}.variants", raw.get("variants"), upstreams),
        cache=_cache(reader, f"{path}.cache", raw.get("cache")),
        temperature=(
            None
            if raw.get("temperature") is None
            else reader.number(raw, "temperature", path, 0, 2, None)
        ),
    )
    if route is not None:
        for need in feature.arm(name).missing():
            reader.fail(f"{path}.{need}", f"required by route {route}")
    for variant_name, variant in feature.variants.items():
        if route is None and variant.route is None:
            continue
        arm = feature.arm(name, variant_name)
        for need in arm.missing():
            reader.fail(
                f"{path}.variants.{variant_name}.{need}",
                f"required by route {arm.route} (set it on the variant or on the feature)",
            )
    return msgspec.structs.replace(
        feature,
        shadow=tuple(_shadow(reader, path, raw, feature, name)),
        fallback=tuple(_fallback(reader, path, raw, feature, name)),
    )


def _shadow(
    reader: _Reader, path: str, raw: dict[str, Any], feature: Feature, name: str
) -> list[str]:
    entries = reader.names(raw, "shadow", path)
    for index, entry in enumerate(entries):
        where = f"{path}.shadow[{index}]"
        if entry in feature.variants:
            continue
        if entry not in ROADS:
            reader.fail(where, f"unknown variant or road {entry!r}")
            continue
        for need in feature.arm(name).missing(_road(entry)):
            reader.fail(where, f"road {entry} needs {need}, which the feature does not set")
    return entries


def _fallback(
    reader: _Reader, path: str, raw: dict[str, Any], feature: Feature, name: str
) -> list[str]:
    """Roads (same upstream and artefacts, another road) or variant names (e.g. a weight-0
    variant on another upstream, for when the feature's own upstream is down)."""
    entries: list[str] = []
    for index, entry in enumerate(reader.names(raw, "fallback", path)):
        where = f"{path}.fallback[{index}]"
        if entry not in ROADS:
            if entry in feature.variants:
                entries.append(entry)
            else:
                reader.fail(where, f"unknown road or variant {entry!r}; roads: {', '.join(ROADS)}")
            continue
        road = _road(entry)
        if road == raw.get("route"):
            reader.fail(where, f"is the feature's own route {road}")
        for need in feature.arm(name).missing(road):
            reader.fail(where, f"road {road} needs {need}, which the feature does not set")
        entries.append(road)
    return entries


def _road(text: str) -> Road:
    return ROADS[ROADS.index(text)]
