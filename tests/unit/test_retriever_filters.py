"""Search filters: valid shapes parse; every malformed one names its field."""

from __future__ import annotations

import pytest

from trivium.common.errors import InvalidInputError
from trivium.retriever.search.filters import Condition, FilterSpec, parse_filter


def test_valid_filter_parses_into_conditions() -> None:
    spec = parse_filter(
        {
            "must": [{"key": "metadata.lang", "match": "en"}, {"key": "doc_id", "any": ["a", "b"]}],
            "must_not": [{"key": "metadata.year", "range": {"lt": 2000, "gte": 1990}}],
        }
    )
    assert spec.must == (
        Condition("metadata.lang", match="en"),
        Condition("doc_id", any=("a", "b")),
    )
    assert spec.must_not == (Condition("metadata.year", range={"lt": 2000.0, "gte": 1990.0}),)
    assert spec.should == ()
    assert parse_filter(None) == FilterSpec()
    assert parse_filter(None).empty


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "filter"),
        ({"must": "x"}, "filter.must"),
        ({"any": []}, "filter.any"),
        ({"must": [3]}, "filter.must[0]"),
        ({"must": [{"key": "text", "match": "x"}]}, "filter.must[0].key"),
        ({"must": [{"key": "metadata.a-b", "match": "x"}]}, "filter.must[0].key"),
        ({"must": [{"key": "doc_id"}]}, "filter.must[0]"),
        ({"must": [{"key": "doc_id", "match": "a", "any": ["a"]}]}, "filter.must[0]"),
        ({"must": [{"key": "doc_id", "match": 1.5}]}, "filter.must[0].match"),
        ({"must": [{"key": "doc_id", "any": []}]}, "filter.must[0].any"),
        ({"must": [{"key": "doc_id", "any": ["a", 1]}]}, "filter.must[0].any"),
        ({"must": [{"key": "doc_id", "any": [{"x": 1}]}]}, "filter.must[0].any[0]"),
        ({"should": [{"key": "doc_id", "range": {"near": 1}}]}, "filter.should[0].range.near"),
        ({"should": [{"key": "doc_id", "range": {"gt": True}}]}, "filter.should[0].range.gt"),
        ({"must_not": [{"key": "doc_id", "match": "a", "boost": 2}]}, "filter.must_not[0].boost"),
        ({"must": [{"key": "doc_id", "match": "a"}] * 65}, "filter.must"),
        ({"must": [{"key": "chunk_index", "match": 2**63}]}, "filter.must[0].match"),
        ({"must": [{"key": "chunk_index", "any": [1, -(2**63) - 1]}]}, "filter.must[0].any[1]"),
    ],
)
def test_malformed_filters_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_filter(raw)
    assert caught.value.field == field


def test_limits_are_per_clause_and_integral_numbers_are_integers() -> None:
    """As the OpenAPI schema states them (`FILTER_JSON_SCHEMA`): 64 conditions per clause, and
    `3.0` is the integer 3."""
    many = [{"key": "doc_id", "match": "a"}] * 64
    spec = parse_filter({"must": many, "should": many, "must_not": many})
    assert len(spec.must) == len(spec.should) == len(spec.must_not) == 64
    spec = parse_filter({"must": [{"key": "chunk_index", "any": [1, 3.0]}]})
    assert spec.must[0].any == (1, 3)
