"""A dataset's rows on the wire: what `trivium datasets publish` reads and the trial runner sends.

A dataset is a registry artifact (kind `dataset`): its version body is a `DatasetManifest`, and
its rows live in content-addressed chunks beside it, so a large set is never one Redis value.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = (
    "CASE_ID_PATTERN",
    "MAX_DATASET_BYTES",
    "MAX_DATASET_ROWS",
    "MAX_ROW_BYTES",
    "ROWS_PER_CHUNK",
    "DatasetManifest",
    "DatasetRow",
    "DatasetRowsPage",
    "Expected",
    "RowMessage",
)

MAX_DATASET_ROWS = 100_000
MAX_ROW_BYTES = 64 * 1024
MAX_DATASET_BYTES = 64 * 1024 * 1024
ROWS_PER_CHUNK = 500
CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"

CaseId = Annotated[str, msgspec.Meta(pattern=CASE_ID_PATTERN)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RowMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str
    content: str


class Expected(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a correct answer is; at least one member is set."""

    label: str | None = None
    """Classification: the one right label."""
    answer: str | None = None
    """A reference text: exact match and token F1."""
    doc_ids: list[str] | None = None
    """The documents that should be retrieved: recall@k and MRR from the citations."""


class DatasetRow(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One case: `input` (the template's variables) or `messages` (a chat), not both."""

    id: CaseId
    expected: Expected
    input: dict[str, Any] | None = None
    messages: list[RowMessage] | None = None
    tags: list[Tag] = []


class DatasetManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A dataset version's body in the registry: its chunks, in order, and what they hold."""

    rows: int
    bytes: int
    rows_sha256: str
    """sha256 of the canonical JSONL of every row, in order."""
    chunks: list[str]
    """The sha256 of each chunk (up to ROWS_PER_CHUNK canonical JSONL rows)."""
    labels: list[str]
    """The label set: every `expected.label` in the rows, sorted."""
    expects: list[str]
    """Which of `label`, `answer`, `doc_ids` the rows carry (every row carries each one named)."""
    tags: dict[str, int] = {}
    """How many rows carry each tag."""


class DatasetRowsPage(msgspec.Struct, frozen=True):
    """`GET /v1/datasets/{name}/rows`: rows from `offset`, in dataset order."""

    name: str
    version: int
    total: int
    offset: int
    rows: list[DatasetRow]
    next_offset: int | None
