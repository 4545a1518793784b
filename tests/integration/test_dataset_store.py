"""Datasets in a real Redis: chunks, versions, paging, idempotent publish, labels, rollback.

Every test runs twice (see `registry_backend` in tests/conftest.py).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from trivium.common.contracts.datasets import ROWS_PER_CHUNK
from trivium.registry.datasets import (
    MAX_PAGE_ROWS,
    DatasetChunkMissingError,
    DatasetStore,
    ParsedDataset,
    parse_dataset,
)
from trivium.registry.errors import (
    MalformedReferenceError,
    NoEarlierVersionError,
    UnknownArtifactError,
    UnknownLabelError,
)

if TYPE_CHECKING:
    from tests.conftest import RegistryBackend

COUNT = 2 * ROWS_PER_CHUNK + 234


def unique() -> str:
    return f"d-{uuid.uuid4().hex[:10]}"


def dataset(count: int = COUNT, salt: str = "") -> ParsedDataset:
    rows: list[dict[str, Any]] = [
        {"id": f"c{i:05d}", "input": {"text": f"case {i}{salt}"}, "expected": {"label": "a"}}
        for i in range(count)
    ]
    return parse_dataset(json.dumps(r) for r in rows)


@pytest.fixture
def store(registry_backend: RegistryBackend) -> DatasetStore:
    return DatasetStore(registry_backend.client, registry_backend.settings)


async def test_publish_writes_chunks_then_a_version(
    store: DatasetStore, registry_backend: RegistryBackend
) -> None:
    name = unique()
    parsed = dataset()
    progress: list[int] = []
    result = await store.publish(name, parsed, actor="alice", progress=progress.append)
    assert result.created
    assert result.artifact.ref == f"{name}@1"
    assert progress == [ROWS_PER_CHUNK, ROWS_PER_CHUNK, 234]

    client = registry_backend.client
    prefix = registry_backend.settings.key_prefix
    keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}:reg:dataset:chunk:*")]
    assert sorted(keys) == sorted(store.chunk_key(sha) for sha in parsed.manifest.chunks)
    # No Redis value holds the whole set: the largest is one chunk.
    largest = 0
    async for key in client.scan_iter(match=f"{prefix}:*"):
        if await client.type(key) == b"string":
            largest = max(largest, await client.strlen(key))
    assert largest == max(len(chunk) for chunk in parsed.chunks) < parsed.manifest.bytes / 2

    assert (await store.manifest(name)) == parsed.manifest
    assert (await store.resolve(f"{name}@1")).sha256 == result.artifact.sha256


async def test_rows_iterate_and_page_across_chunks(store: DatasetStore) -> None:
    name = unique()
    await store.publish(name, dataset(), actor="alice")

    every = [row.id async for row in store.rows(name)]
    assert every == [f"c{i:05d}" for i in range(COUNT)]
    window = [row.id async for row in store.rows(f"{name}@1", ROWS_PER_CHUNK - 3, 6)]
    assert window == [f"c{i:05d}" for i in range(ROWS_PER_CHUNK - 3, ROWS_PER_CHUNK + 3)]

    first = await store.page(name, offset=0, limit=ROWS_PER_CHUNK)
    assert (first.name, first.version, first.total, first.next_offset) == (name, 1, COUNT, 500)
    page = await store.page(name, offset=ROWS_PER_CHUNK - 10, limit=MAX_PAGE_ROWS)
    assert (page.offset, page.next_offset) == (490, None)
    assert [r.id for r in page.rows] == [f"c{i:05d}" for i in range(490, COUNT)]
    beyond = await store.page(name, offset=COUNT + 5, limit=10)
    assert (beyond.rows, beyond.next_offset) == ([], None)


async def test_the_same_rows_are_the_same_version(store: DatasetStore) -> None:
    name = unique()
    first = await store.publish(name, dataset(), actor="alice")
    again = await store.publish(name, dataset(), actor="bob")
    assert not again.created
    assert again.artifact.version == 1
    assert again.artifact.sha256 == first.artifact.sha256
    other = await store.publish(name, dataset(salt="!"), actor="alice")
    assert (other.created, other.artifact.version) == (True, 2)
    # A name without a selector is the latest version.
    assert (await store.resolve(name)).version == 2
    assert (await store.select(name, None)).version == 2
    assert (await store.select(name, "1")).version == 1


async def test_labels_rollback_and_history(store: DatasetStore) -> None:
    name = unique()
    await store.publish(name, dataset(10), actor="alice")
    await store.publish(name, dataset(10, salt="v2"), actor="alice")
    await store.registry.promote(name, "production", 1, actor="alice")
    await store.registry.promote(name, "production", 2, actor="bob")
    assert (await store.resolve(f"{name}@production")).version == 2
    first_rows = [row async for row in store.rows(f"{name}@production", 0, 1)]
    assert [r.input for r in first_rows] == [{"text": "case 0v2"}]

    move = await store.registry.rollback(name, "production", actor="carol")
    assert (move.from_version, move.to_version) == (2, 1)
    assert (await store.page(f"{name}@production", 0, 1)).version == 1
    with pytest.raises(NoEarlierVersionError):
        await store.registry.rollback(name, "production", actor="carol")
    actions = [(e.action, e.actor) for e in await store.registry.history(name)]
    assert actions == [
        ("publish", "alice"),
        ("publish", "alice"),
        ("promote", "alice"),
        ("promote", "bob"),
        ("rollback", "carol"),
    ]


async def test_unknown_and_malformed_references(store: DatasetStore) -> None:
    with pytest.raises(UnknownArtifactError):
        await store.resolve(unique())
    name = unique()
    await store.publish(name, dataset(3), actor="alice")
    with pytest.raises(UnknownLabelError):
        await store.select(name, "canary")
    with pytest.raises(MalformedReferenceError) as caught:
        await store.select(name, "Not A Label")
    assert caught.value.field == "selector"


async def test_a_lost_chunk_is_a_clear_error(
    store: DatasetStore, registry_backend: RegistryBackend
) -> None:
    name = unique()
    parsed = dataset()
    await store.publish(name, parsed, actor="alice")
    await registry_backend.client.delete(store.chunk_key(parsed.manifest.chunks[1]))
    assert len((await store.page(name, 0, 500)).rows) == 500
    with pytest.raises(DatasetChunkMissingError, match=parsed.manifest.chunks[1][:12]):
        await store.page(name, 400, 200)
