"""Datasets, a registry kind: validation sets of JSONL rows, versioned like templates.

A version's body is a `DatasetManifest` (canonical JSON); the rows live beside it in
content-addressed chunks, each the canonical JSONL of up to ROWS_PER_CHUNK rows, written
before the version is published and never changed, so no Redis value holds a whole set:

  p:reg:dataset:chunk:<sha256>   string  canonical JSONL rows (immutable)

Limits (stated here, enforced by `parse_dataset`): MAX_DATASET_BYTES in all (413),
MAX_DATASET_ROWS rows (413), MAX_ROW_BYTES a line, MAX_LABELS distinct labels of at most
MAX_LABEL_CHARS characters, MAX_TAGS distinct tags (400 naming the line); so a manifest stays
well inside the registry's body limit. Same rows, in the same order = the same version.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.common.contracts.datasets import (
    MAX_DATASET_BYTES,
    MAX_DATASET_ROWS,
    MAX_ROW_BYTES,
    ROWS_PER_CHUNK,
    DatasetManifest,
    DatasetRow,
    DatasetRowsPage,
)
from trivium.common.errors import InvalidInputError, PayloadTooLargeError, TriviumError
from trivium.common.settings import RegistrySettings
from trivium.registry.errors import InvalidArtifactError, RegistryUnavailableError
from trivium.registry.models import ArtifactVersion, PublishResult
from trivium.registry.references import parse_reference, validate_name
from trivium.registry.store import Registry

__all__ = (
    "DATASET_KIND",
    "EXPECTS",
    "MAX_LABELS",
    "MAX_LABEL_CHARS",
    "MAX_LISTED_ERRORS",
    "MAX_PAGE_ROWS",
    "MAX_TAGS",
    "DatasetChunkMissingError",
    "DatasetKind",
    "DatasetStore",
    "DatasetTooLargeError",
    "InvalidDatasetError",
    "ParsedDataset",
    "RowError",
    "parse_dataset",
)

MAX_LABELS = 200
MAX_LABEL_CHARS = 128
MAX_TAGS = 200
MAX_LISTED_ERRORS = 100
"""At most this many bad rows are listed in one error (the count says how many there were)."""
MAX_PAGE_ROWS = 1000
EXPECTS = ("label", "answer", "doc_ids")
ROLES = frozenset({"system", "user", "assistant"})

_row_decoder = msgspec.json.Decoder(DatasetRow)
_manifest_decoder = msgspec.json.Decoder(DatasetManifest)
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


class InvalidDatasetError(InvalidInputError):
    """Bad rows: `errors` lists each one (`line`, `field`, `message`)."""

    code = "invalid_dataset"


class DatasetTooLargeError(PayloadTooLargeError):
    code = "dataset_too_large"


class DatasetChunkMissingError(TriviumError):
    """A published version's chunk is gone from Redis: the store lost data."""

    code = "dataset_chunk_missing"


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedDataset:
    """A validated file: its manifest and its chunks (canonical JSONL, in order)."""

    manifest: DatasetManifest
    chunks: list[bytes]

    @property
    def body(self) -> str:
        """The registry version body: the manifest as canonical JSON."""
        return msgspec.json.encode(self.manifest, order="sorted").decode()


class DatasetKind:
    """The registry's `dataset` kind: the body must be a manifest, metadata stays empty."""

    name = "dataset"

    def validate(self, body: str, metadata: dict[str, Any]) -> dict[str, Any]:
        if metadata:
            raise InvalidArtifactError("datasets carry no metadata", field="metadata")
        try:
            _manifest_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidArtifactError(f"not a dataset manifest: {exc}", field="body") from exc
        return {}


DATASET_KIND = DatasetKind()


def _field_of(error: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's `Expected str, got int - at $.expected.label` as (`expected.label`, message)."""
    text = str(error)
    match = _PATH.search(text)
    path = match.group("path").lstrip(".") if match else ""
    message = text[: match.start()] if match else text
    named = _FIELD.search(message)
    if named and ("missing required" in message or "unknown field" in message):
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    return path or "row", message


class _Collector:
    """Everything `parse_dataset` learns about the rows while it streams them."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []
        self.error_count = 0
        self.bad_lines: set[int] = set()
        self.first_line: dict[str, int] = {}
        self.expects: tuple[str, ...] | None = None
        self.expects_line = 0
        self.labels: set[str] = set()
        self.tags: dict[str, int] = {}

    def bad(self, line: int, field: str, message: str) -> None:
        self.error_count += 1
        self.bad_lines.add(line)
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(RowError(line, field, message))

    def check(self, line: int, row: DatasetRow) -> bool:
        before = self.error_count
        if (row.input is None) == (row.messages is None):
            self.bad(line, "input", "give exactly one of `input` and `messages`")
        if row.messages is not None:
            if not row.messages:
                self.bad(line, "messages", "must hold at least one message")
            for i, message in enumerate(row.messages):
                if message.role not in ROLES:
                    self.bad(line, f"messages[{i}].role", f"must be one of {sorted(ROLES)}")
        self._check_expected(line, row)
        seen = self.first_line.get(row.id)
        if seen is not None:
            self.bad(line, "id", f"{row.id!r} is also the id of line {seen}")
        else:
            self.first_line[row.id] = line
        for tag in row.tags:
            if tag not in self.tags and len(self.tags) >= MAX_TAGS:
                self.bad(line, "tags", f"more than {MAX_TAGS} distinct tags in the dataset")
        return self.error_count == before

    def _check_expected(self, line: int, row: DatasetRow) -> None:
        expected = row.expected
        members = tuple(m for m in EXPECTS if getattr(expected, m) is not None)
        if not members:
            self.bad(line, "expected", f"needs at least one of {', '.join(EXPECTS)}")
            return
        if self.expects is None:
            self.expects, self.expects_line = members, line
        elif members != self.expects:
            self.bad(
                line,
                "expected",
                f"carries {', '.join(members)}; every row must carry the same members as "
                f"line {self.expects_line} ({', '.join(self.expects)})",
            )
        label = expected.label
        if label is not None:
            if not label.strip() or len(label) > MAX_LABEL_CHARS:
                self.bad(line, "expected.label", f"must be 1-{MAX_LABEL_CHARS} characters")
            elif label not in self.labels and len(self.labels) >= MAX_LABELS:
                self.bad(line, "expected.label", f"more than {MAX_LABELS} distinct labels")
        if expected.doc_ids is not None and (not expected.doc_ids or not all(expected.doc_ids)):
            self.bad(line, "expected.doc_ids", "must list at least one non-empty document id")

    def keep(self, row: DatasetRow) -> None:
        if row.expected.label is not None:
            self.labels.add(row.expected.label)
        for tag in row.tags:
            self.tags[tag] = self.tags.get(tag, 0) + 1


def parse_dataset(lines: Iterable[bytes | str]) -> ParsedDataset:
    """Validate a JSONL file as it streams; blank lines are skipped.

    Raises one `InvalidDatasetError` listing every bad line and field (the first
    MAX_LISTED_ERRORS), or `DatasetTooLargeError` as soon as a limit on the whole is passed.
    """
    seen = _Collector()
    chunks: list[bytes] = []
    current: list[bytes] = []
    total_bytes = rows = canonical_bytes = 0
    digest = hashlib.sha256()
    for number, raw in enumerate(lines, start=1):
        data = raw.encode() if isinstance(raw, str) else raw
        total_bytes += len(data)
        if total_bytes > MAX_DATASET_BYTES:
            raise DatasetTooLargeError(
                f"the dataset passes {MAX_DATASET_BYTES} bytes at line {number}",
                field="body",
                extra={"limit_bytes": MAX_DATASET_BYTES},
            )
        data = data.rstrip(b"\r\n")
        if not data.strip():
            continue
        rows += 1
        if rows > MAX_DATASET_ROWS:
            raise DatasetTooLargeError(
                f"the dataset passes {MAX_DATASET_ROWS} rows at line {number}",
                field="body",
                extra={"limit_rows": MAX_DATASET_ROWS},
            )
        row = _decode_row(seen, number, data)
        if row is None or not seen.check(number, row) or seen.error_count:
            continue
        seen.keep(row)
        line = msgspec.json.encode(row, order="sorted") + b"\n"
        digest.update(line)
        canonical_bytes += len(line)
        current.append(line)
        if len(current) == ROWS_PER_CHUNK:
            chunks.append(b"".join(current))
            current = []
    if seen.error_count:
        raise _invalid(seen)
    if current:
        chunks.append(b"".join(current))
    if not rows:
        raise InvalidDatasetError("the dataset has no rows", field="body")
    manifest = DatasetManifest(
        rows=rows,
        bytes=canonical_bytes,
        rows_sha256=digest.hexdigest(),
        chunks=[hashlib.sha256(chunk).hexdigest() for chunk in chunks],
        labels=sorted(seen.labels),
        expects=list(seen.expects or ()),
        tags=dict(sorted(seen.tags.items())),
    )
    return ParsedDataset(manifest, chunks)


def _decode_row(seen: _Collector, number: int, data: bytes) -> DatasetRow | None:
    if len(data) > MAX_ROW_BYTES:
        seen.bad(number, "row", f"is {len(data)} bytes; the limit is {MAX_ROW_BYTES}")
        return None
    try:
        return _row_decoder.decode(data)
    except msgspec.ValidationError as exc:
        field, message = _field_of(exc)
        seen.bad(number, field, message)
    except msgspec.DecodeError as exc:
        seen.bad(number, "row", f"not valid JSON: {exc}")
    return None


def _invalid(seen: _Collector) -> InvalidDatasetError:
    more = seen.error_count - len(seen.errors)
    listed = "; ".join(str(e) for e in seen.errors) + (f"; and {more} more" if more else "")
    first = seen.errors[0]
    return InvalidDatasetError(
        f"{seen.error_count} error(s) on {len(seen.bad_lines)} line(s), nothing published: "
        f"{listed}",
        field=first.field,
        extra={
            "line": first.line,
            "error_count": seen.error_count,
            "bad_lines": len(seen.bad_lines),
            "errors": [
                {"line": e.line, "field": e.field, "message": e.message} for e in seen.errors
            ],
        },
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class DatasetStore:
    """Datasets in the registry: chunks written first, then the manifest published as a version.

    A reference is `name` (the latest version), `name@label` or `name@3`.
    """

    def __init__(
        self, client: Redis, settings: RegistrySettings | None = None, *, cache: bool = False
    ) -> None:
        self.settings = settings or RegistrySettings()
        self.registry = Registry(client, DATASET_KIND, self.settings, cache=cache)
        self._client = client
        self._chunk_prefix = f"{self.settings.key_prefix}:reg:{DATASET_KIND.name}:chunk:"

    def chunk_key(self, sha256: str) -> str:
        return self._chunk_prefix + sha256

    async def publish(
        self,
        name: str,
        parsed: ParsedDataset,
        *,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PublishResult:
        """Write the chunks (`progress(rows)` after each), then publish the manifest.
        Same rows as an existing version: that version, `created=False`."""
        validate_name(name)
        remaining = parsed.manifest.rows
        for sha, chunk in zip(parsed.manifest.chunks, parsed.chunks, strict=True):
            write = functools.partial(self._client.set, self.chunk_key(sha), chunk, nx=True)
            await self._call("dataset chunk write", write)
            written = min(ROWS_PER_CHUNK, remaining)
            remaining -= written
            if progress is not None:
                progress(written)
        return await self.registry.publish(name, parsed.body, {}, actor=actor)

    async def resolve(self, ref: str) -> ArtifactVersion:
        name, sep, _ = ref.partition("@")
        if not sep:
            return await self.latest(name)
        return await self.registry.resolve(ref)

    async def latest(self, name: str) -> ArtifactVersion:
        validate_name(name)
        versions_key = f"{self.settings.key_prefix}:reg:{DATASET_KIND.name}:{name}:versions"
        count = await self._call("dataset lookup", lambda: self._client.hlen(versions_key))
        if not count:
            await self.registry.labels(name)  # raises UnknownArtifactError naming `name`
        return await self.registry.get(name, int(count))

    async def select(self, name: str, selector: str | None) -> ArtifactVersion:
        """`name` at a label or version number, or its latest version when `selector` is None."""
        if selector is None:
            return await self.latest(name)
        validate_name(name)
        parse_reference(f"{name}@{selector}", field="selector")
        return await self.registry.resolve(f"{name}@{selector}")

    @staticmethod
    def manifest_of(version: ArtifactVersion) -> DatasetManifest:
        return _manifest_decoder.decode(version.body)

    async def manifest(self, ref: str) -> DatasetManifest:
        return self.manifest_of(await self.resolve(ref))

    async def rows(
        self, ref: str, offset: int = 0, limit: int | None = None
    ) -> AsyncIterator[DatasetRow]:
        """The rows of `ref` from `offset` (at most `limit`), read one chunk at a time."""
        async for row in self.rows_of(await self.resolve(ref), offset, limit):
            yield row

    async def rows_of(
        self, version: ArtifactVersion, offset: int = 0, limit: int | None = None
    ) -> AsyncIterator[DatasetRow]:
        if offset < 0:
            raise InvalidInputError(f"offset must be at least 0, got {offset}", field="offset")
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}", field="limit")
        manifest = self.manifest_of(version)
        end = manifest.rows if limit is None else min(manifest.rows, offset + limit)
        index = offset // ROWS_PER_CHUNK
        position = index * ROWS_PER_CHUNK
        while position < end:
            rows = await self._chunk(version, manifest.chunks[index])
            for row in rows[max(0, offset - position) : end - position]:
                yield row
            position += len(rows)
            index += 1

    async def _chunk(self, version: ArtifactVersion, sha: str) -> list[DatasetRow]:
        key = self.chunk_key(sha)
        data = await self._call("dataset chunk read", lambda: self._client.get(key))
        if data is None:
            raise DatasetChunkMissingError(
                f"{version.ref}: chunk {sha[:12]} is missing from the store", field="name"
            )
        return _row_decoder.decode_lines(data)

    async def page(self, ref: str, offset: int = 0, limit: int = 500) -> DatasetRowsPage:
        return await self.page_of(await self.resolve(ref), offset, limit)

    async def page_of(
        self, version: ArtifactVersion, offset: int = 0, limit: int = 500
    ) -> DatasetRowsPage:
        if not 1 <= limit <= MAX_PAGE_ROWS:
            raise InvalidInputError(
                f"limit must be between 1 and {MAX_PAGE_ROWS}, got {limit}", field="limit"
            )
        total = self.manifest_of(version).rows
        rows = [row async for row in self.rows_of(version, offset, limit)]
        following = offset + len(rows)
        return DatasetRowsPage(
            name=version.name,
            version=version.version,
            total=total,
            offset=offset,
            rows=rows,
            next_offset=following if following < total else None,
        )

    async def _call(self, what: str, operation: Callable[[], Any]) -> Any:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailableError(
                f"registry store unreachable during {what}: {exc}", retry_after_s=2
            ) from exc
