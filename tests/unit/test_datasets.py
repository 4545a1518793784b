"""Parsing dataset files: what a good file becomes, every bad line named, the limits."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import pytest

from trivium.common.contracts.datasets import (
    MAX_ROW_BYTES,
    ROWS_PER_CHUNK,
    DatasetManifest,
    DatasetRow,
)
from trivium.common.http.error_mapping import problem_from
from trivium.registry import datasets
from trivium.registry.datasets import (
    DATASET_KIND,
    MAX_LABELS,
    MAX_LISTED_ERRORS,
    DatasetTooLargeError,
    InvalidDatasetError,
    parse_dataset,
)
from trivium.registry.errors import InvalidArtifactError


def row(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"case-{i}",
        "input": {"ticket": f"ticket number {i}"},
        "expected": {"label": "billing" if i % 2 else "bug"},
    }
    return {**base, **overrides}


def jsonl(rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) + "\n" for r in rows]


def errors_of(lines: list[str]) -> list[tuple[int, str]]:
    with pytest.raises(InvalidDatasetError) as caught:
        parse_dataset(lines)
    return [(e["line"], e["field"]) for e in caught.value.extra["errors"]]


def test_a_good_file_becomes_chunks_and_a_manifest() -> None:
    count = 2 * ROWS_PER_CHUNK + 7
    rows = [row(i, tags=["en"] if i < 10 else []) for i in range(count)]
    parsed = parse_dataset(jsonl(rows))
    manifest = parsed.manifest

    assert manifest.rows == count
    assert [len(chunk.splitlines()) for chunk in parsed.chunks] == [
        ROWS_PER_CHUNK,
        ROWS_PER_CHUNK,
        7,
    ]
    assert manifest.chunks == [hashlib.sha256(c).hexdigest() for c in parsed.chunks]
    everything = b"".join(parsed.chunks)
    assert manifest.rows_sha256 == hashlib.sha256(everything).hexdigest()
    assert manifest.bytes == len(everything)
    assert manifest.labels == ["billing", "bug"]
    assert manifest.expects == ["label"]
    assert manifest.tags == {"en": 10}
    decoded = [msgspec.json.decode(line, type=DatasetRow) for line in everything.splitlines()]
    assert [r.id for r in decoded] == [f"case-{i}" for i in range(count)]
    assert msgspec.json.decode(parsed.body, type=DatasetManifest) == manifest
    assert DATASET_KIND.validate(parsed.body, {}) == {}


def test_the_same_rows_written_differently_are_the_same_version() -> None:
    rows = [row(i) for i in range(3)]
    compact = parse_dataset(jsonl(rows))
    spaced = ["\n"] + [json.dumps(r, indent=None, separators=(" , ", " : ")) + "\r\n" for r in rows]
    reordered = [json.dumps(dict(reversed(list(r.items())))) for r in rows] + ["", "  \n"]
    assert parse_dataset(spaced).body == compact.body
    assert parse_dataset(reordered).body == compact.body
    assert parse_dataset(jsonl(rows[::-1])).body != compact.body


def test_messages_answers_and_doc_ids() -> None:
    parsed = parse_dataset(
        jsonl(
            [
                {
                    "id": "q1",
                    "messages": [{"role": "user", "content": "is aspirin safe?"}],
                    "expected": {"answer": "maybe", "doc_ids": ["pmid-1", "pmid-2"]},
                }
            ]
        )
    )
    assert parsed.manifest.expects == ["answer", "doc_ids"]
    assert parsed.manifest.labels == []


def test_every_bad_line_is_named_with_its_field_and_nothing_is_kept() -> None:
    lines = [
        *jsonl(
            [
                row(1),
                row(2, expected={"label": 3}),
                {k: v for k, v in row(3).items() if k != "input"},
                row(4, extra="no"),
                {k: v for k, v in row(5).items() if k != "id"},
                row(6, messages=[{"role": "user", "content": "hi"}]),
                row(7, expected={}),
                row(8, expected={"label": "bug", "answer": "x"}),
                row(1),
                row(10, id="-not-an-id"),
                row(11, messages=[{"role": "robot", "content": "hi"}], input=None),
                row(12, expected={"doc_ids": []}),
            ]
        ),
        "{not json\n",
    ]
    assert errors_of(lines) == [
        (2, "expected.label"),
        (3, "input"),
        (4, "extra"),
        (5, "id"),
        (6, "input"),
        (7, "expected"),
        (8, "expected"),
        (9, "id"),
        (10, "id"),
        (11, "messages[0].role"),
        (12, "expected"),
        (12, "expected.doc_ids"),
        (13, "row"),
    ]


def test_the_error_names_lines_in_its_message_and_problem_body() -> None:
    with pytest.raises(InvalidDatasetError) as caught:
        parse_dataset(jsonl([row(1), row(1)]))
    error = caught.value
    assert error.status_code == 400
    assert "line 2: id: 'case-1' is also the id of line 1" in error.message
    problem = problem_from(error)
    assert problem.status == 400
    assert problem.code == "invalid_dataset"
    assert problem.field == "id"
    assert problem.extra["errors"] == [
        {"line": 2, "field": "id", "message": "'case-1' is also the id of line 1"}
    ]


def test_listing_stops_at_the_cap_and_counts_the_rest() -> None:
    bad = [json.dumps(row(i, expected={})) for i in range(MAX_LISTED_ERRORS + 5)]
    with pytest.raises(InvalidDatasetError) as caught:
        parse_dataset(bad)
    assert len(caught.value.extra["errors"]) == MAX_LISTED_ERRORS
    assert caught.value.extra["error_count"] == MAX_LISTED_ERRORS + 5
    assert caught.value.message.endswith("; and 5 more")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidDatasetError, match="no rows"):
        parse_dataset(["\n", "  "])


def test_an_oversize_row_is_named() -> None:
    big = row(2, input={"ticket": "x" * MAX_ROW_BYTES})
    assert errors_of(jsonl([row(1), big, row(3)])) == [(2, "row")]


def test_too_many_distinct_labels() -> None:
    rows = [row(i, expected={"label": f"l{i}"}) for i in range(MAX_LABELS + 1)]
    assert errors_of(jsonl(rows)) == [(MAX_LABELS + 1, "expected.label")]


def test_the_whole_file_limits_are_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "MAX_DATASET_ROWS", 5)
    with pytest.raises(DatasetTooLargeError) as caught:
        parse_dataset(jsonl([row(i) for i in range(6)]))
    assert caught.value.status_code == 413
    assert "5 rows at line 6" in caught.value.message

    monkeypatch.setattr(datasets, "MAX_DATASET_BYTES", 200)
    with pytest.raises(DatasetTooLargeError, match="passes 200 bytes at line 3"):
        parse_dataset(jsonl([row(i) for i in range(3)]))


def test_the_kind_refuses_what_is_not_a_manifest() -> None:
    with pytest.raises(InvalidArtifactError):
        DATASET_KIND.validate('{"rows": 1}', {})
    with pytest.raises(InvalidArtifactError):
        DATASET_KIND.validate(parse_dataset(jsonl([row(1)])).body, {"owner": "x"})
