"""The search filter: parsed from the API's JSON into a store-neutral form, or a 400 naming the
field. Each store translates `FilterSpec` into its own engine's filter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trivium.common.errors import InvalidInputError

__all__ = ("FILTER_JSON_SCHEMA", "Condition", "FilterSpec", "parse_filter")

_CLAUSES = ("must", "should", "must_not")
_RANGE_BOUNDS = ("gt", "gte", "lt", "lte")
_TOP_LEVEL_KEYS = {"doc_id", "source", "title", "chunk_index"}
_METADATA_KEY = re.compile(r"^metadata\.[A-Za-z0-9_]{1,64}$")
MAX_CONDITIONS = 64
"""Per clause."""
MAX_ANY_VALUES = 1024
INT64 = (-(2**63), 2**63 - 1)

Scalar = str | int | bool


@dataclass(frozen=True, slots=True)
class Condition:
    """Exactly one of `match`, `any`, `range` is set."""

    key: str
    match: Scalar | None = None
    any: tuple[Scalar, ...] | None = None
    range: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class FilterSpec:
    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def with_must(self, *conditions: Condition) -> FilterSpec:
        return FilterSpec(self.must + conditions, self.should, self.must_not)

    @property
    def empty(self) -> bool:
        return not (self.must or self.should or self.must_not)


def parse_filter(raw: object, path: str = "filter") -> FilterSpec:
    """`{"must"|"should"|"must_not": [{"key": ..., "match"|"any"|"range": ...}]}`."""
    if raw is None:
        return FilterSpec()
    if not isinstance(raw, dict):
        raise InvalidInputError("a filter is an object of must/should/must_not lists", field=path)
    unknown = sorted(set(raw) - set(_CLAUSES))
    if unknown:
        raise InvalidInputError(
            f"unknown filter clause {unknown[0]!r}; use must, should or must_not",
            field=f"{path}.{unknown[0]}",
        )
    clauses: dict[str, tuple[Condition, ...]] = {}
    for clause in _CLAUSES:
        items = raw.get(clause, [])
        if not isinstance(items, list):
            raise InvalidInputError(
                f"{clause} must be a list of conditions", field=f"{path}.{clause}"
            )
        if len(items) > MAX_CONDITIONS:
            raise InvalidInputError(
                f"at most {MAX_CONDITIONS} conditions", field=f"{path}.{clause}"
            )
        clauses[clause] = tuple(
            _parse_condition(item, f"{path}.{clause}[{i}]") for i, item in enumerate(items)
        )
    return FilterSpec(clauses["must"], clauses["should"], clauses["must_not"])


def _parse_condition(raw: Any, path: str) -> Condition:
    if not isinstance(raw, dict):
        raise InvalidInputError("a condition is an object with key and match/any/range", field=path)
    key = raw.get("key")
    if not isinstance(key, str) or not (key in _TOP_LEVEL_KEYS or _METADATA_KEY.match(key)):
        raise InvalidInputError(
            "key must be doc_id, source, title, chunk_index or metadata.<name>",
            field=f"{path}.key",
        )
    operators = [name for name in ("match", "any", "range") if name in raw]
    unknown = sorted(set(raw) - {"key", "match", "any", "range"})
    if unknown:
        raise InvalidInputError(
            f"unknown condition member {unknown[0]!r}", field=f"{path}.{unknown[0]}"
        )
    if len(operators) != 1:
        raise InvalidInputError("a condition needs exactly one of match, any, range", field=path)
    operator = operators[0]
    value = raw[operator]
    where = f"{path}.{operator}"
    if operator == "match":
        return Condition(key, match=_scalar(value, where))
    if operator == "any":
        if not isinstance(value, list) or not value or len(value) > MAX_ANY_VALUES:
            raise InvalidInputError(
                f"any is a non-empty list of up to {MAX_ANY_VALUES} values", field=where
            )
        values = tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(value))
        if len({type(v) for v in values}) > 1 or isinstance(values[0], bool):
            raise InvalidInputError("any lists strings or integers, not a mix", field=where)
        return Condition(key, any=values)
    return Condition(key, range=_range(value, where))


def _scalar(value: object, where: str) -> Scalar:
    if isinstance(value, float) and value.is_integer():  # 3.0 is an integer in JSON Schema
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidInputError("an integer must fit in 64 bits", field=where)
        return value
    if isinstance(value, str | bool):
        return value
    raise InvalidInputError("match a string, an integer or a boolean", field=where)


def _range(value: object, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise InvalidInputError("range is an object of gt/gte/lt/lte bounds", field=where)
    bounds: dict[str, float] = {}
    for name, bound in value.items():
        if name not in _RANGE_BOUNDS:
            raise InvalidInputError(f"unknown range bound {name!r}", field=f"{where}.{name}")
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise InvalidInputError("a range bound is a number", field=f"{where}.{name}")
        bounds[name] = float(bound)
    return bounds


def _condition_schema(operator: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"key": _KEY_SCHEMA, operator: value},
        "required": ["key", operator],
        "additionalProperties": False,
    }


_INTEGER = {"type": "integer", "minimum": INT64[0], "maximum": INT64[1]}
_KEY_SCHEMA = {
    "anyOf": [
        {"type": "string", "enum": sorted(_TOP_LEVEL_KEYS)},
        {"type": "string", "pattern": _METADATA_KEY.pattern},
    ]
}
_CONDITION_SCHEMA = {
    "anyOf": [
        _condition_schema("match", {"anyOf": [{"type": "string"}, _INTEGER, {"type": "boolean"}]}),
        _condition_schema(
            "any",
            {
                "anyOf": [
                    {
                        "type": "array",
                        "items": item,
                        "minItems": 1,
                        "maxItems": MAX_ANY_VALUES,
                    }
                    for item in ({"type": "string"}, _INTEGER)
                ]
            },
        ),
        _condition_schema(
            "range",
            {
                "type": "object",
                "properties": {bound: {"type": "number"} for bound in _RANGE_BOUNDS},
                "minProperties": 1,
                "additionalProperties": False,
            },
        ),
    ]
}
FILTER_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "description": "payload conditions: all of must, any of should, none of must_not",
            "properties": {
                clause: {"type": "array", "items": _CONDITION_SCHEMA, "maxItems": MAX_CONDITIONS}
                for clause in _CLAUSES
            },
            "additionalProperties": False,
        },
        {"type": "null"},
    ]
}
"""The grammar `parse_filter` reads, as JSON Schema (the retriever's OpenAPI states it)."""
