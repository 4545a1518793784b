"""The registry against a real Redis: versions, labels, rollback, audit, diff, list.

Every test runs twice (see `registry_backend` in tests/conftest.py): against a private
redis-server by URL, and against the embedded default store.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from trivium.common.http.error_mapping import problem_from
from trivium.common.http.problems import problem_body
from trivium.common.settings import RegistrySettings
from trivium.registry import (
    ABSENT,
    ArtifactSummary,
    ArtifactVersion,
    AuditEntry,
    LabelMove,
    Registry,
)
from trivium.registry.errors import (
    ArtifactTooLargeError,
    InvalidArtifactError,
    LabelConflictError,
    MalformedReferenceError,
    NoEarlierVersionError,
    UnknownArtifactError,
    UnknownLabelError,
    UnknownVersionError,
)
from trivium.registry.store import content_hash, default_actor

if TYPE_CHECKING:
    from tests.conftest import RegistryBackend

QA = "Q: {{ question }}\nA:"
VARIABLES = {"variables": ["question"]}


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def publish_versions(
    registry: Registry, name: str, count: int, actor: str = "alice"
) -> list[ArtifactVersion]:
    published = []
    for i in range(1, count + 1):
        result = await registry.publish(name, f"{QA} (v{i})", VARIABLES, actor=actor)
        assert result.created
        published.append(result.artifact)
    return published


async def moves(registry: Registry, name: str) -> list[AuditEntry]:
    return [e for e in await registry.history(name) if e.action in ("promote", "rollback")]


# -- publish ---------------------------------------------------------------------------


async def test_publish_numbers_versions_and_hashes_content(registry: Registry) -> None:
    name = unique()
    before = time.time()
    published = await publish_versions(registry, name, 3)
    after = time.time()

    assert [a.version for a in published] == [1, 2, 3]
    for i, artifact in enumerate(published, start=1):
        assert artifact.kind == "template"
        assert artifact.name == name
        assert artifact.ref == f"{name}@{i}"
        assert artifact.body == f"{QA} (v{i})"
        assert artifact.metadata == {"variables": ["question"]}
        assert artifact.sha256 == content_hash(artifact.body, artifact.metadata)
        assert len(artifact.sha256) == 64
        assert artifact.created_by == "alice"
        assert before <= artifact.created_at <= after
    assert len({a.sha256 for a in published}) == 3
    assert await registry.versions(name) == published
    assert await registry.get(name, 2) == published[1]
    assert await registry.resolve(f"{name}@3") == published[2]
    history = await registry.history(name)
    assert [(e.action, e.version, e.actor) for e in history] == [
        ("publish", 1, "alice"),
        ("publish", 2, "alice"),
        ("publish", 3, "alice"),
    ]


async def test_identical_republish_returns_the_existing_version(registry: Registry) -> None:
    name = unique()
    first = await registry.publish(
        name, QA, {"variables": ["question"], "owner": "search"}, actor="alice"
    )
    assert first.created
    await registry.publish(name, QA + " (v2)", VARIABLES, actor="alice")
    audit_before = await registry.history(name)

    again = await registry.publish(
        name, QA, {"owner": "search", "variables": ["question", "question"]}, actor="bob"
    )
    assert again.created is False
    assert again.artifact == first.artifact
    assert again.artifact.created_by == "alice"
    assert await registry.history(name) == audit_before
    assert [v.version for v in await registry.versions(name)] == [1, 2]

    changed = await registry.publish(name, QA, {"variables": ["question"]}, actor="bob")
    assert changed.created  # metadata is content too
    assert changed.artifact.version == 3


async def test_size_limits(registry_backend: RegistryBackend) -> None:
    settings = RegistrySettings(
        key_prefix=registry_backend.settings.key_prefix, max_body_bytes=64, max_metadata_bytes=80
    )
    registry = await registry_backend.registry(settings=settings)
    name = unique()

    with pytest.raises(ArtifactTooLargeError) as too_big:
        await registry.publish(name, "x" * 65)
    assert too_big.value.status_code == 413
    assert too_big.value.code == "artifact_too_large"
    assert too_big.value.field == "body"
    assert "65 bytes" in too_big.value.message
    assert "64" in too_big.value.message
    with pytest.raises(ArtifactTooLargeError) as multibyte:
        await registry.publish(name, "é" * 33)  # 33 characters, 66 bytes
    assert multibyte.value.field == "body"

    with pytest.raises(ArtifactTooLargeError) as meta_too_big:
        await registry.publish(name, "hi", {"variables": [], "description": "d" * 80})
    assert meta_too_big.value.status_code == 413
    assert meta_too_big.value.field == "metadata"
    with pytest.raises(UnknownArtifactError):
        await registry.versions(name)

    at_limit = await registry.publish(name, "x" * 64, {"description": "d" * 40})
    assert at_limit.created
    assert at_limit.artifact.version == 1


async def test_invalid_artifacts_are_not_stored(registry: Registry) -> None:
    name = unique()
    with pytest.raises(InvalidArtifactError) as syntax:
        await registry.publish(name, "{{ question ", VARIABLES)
    assert syntax.value.field == "body"
    with pytest.raises(InvalidArtifactError) as undeclared:
        await registry.publish(name, "{{ question }} {{ context }}", VARIABLES)
    assert undeclared.value.field == "metadata.variables"
    assert "context" in undeclared.value.message
    with pytest.raises(MalformedReferenceError) as bad_name:
        await registry.publish("Bad Name", QA, VARIABLES)
    assert bad_name.value.field == "name"
    with pytest.raises(UnknownArtifactError):
        await registry.history(name)
    assert await registry.list() == []


# -- labels: promote -------------------------------------------------------------------------


async def test_promote_is_compare_and_set(registry: Registry) -> None:
    name = unique()
    await publish_versions(registry, name, 3)

    first = await registry.promote(name, "production", 1, expected_current=ABSENT, actor="bob")
    assert first == LabelMove(name, "production", None, 1, changed=True)

    with pytest.raises(LabelConflictError) as must_be_absent:
        await registry.promote(name, "production", 2, expected_current=ABSENT)
    error = must_be_absent.value
    assert error.status_code == 409
    assert error.code == "label_conflict"
    assert error.field == "expected_current"
    assert error.extra == {"current": 1}
    assert "version 1" in error.message
    assert problem_body(problem_from(error))["current"] == 1

    with pytest.raises(LabelConflictError) as stale:
        await registry.promote(name, "production", 2, expected_current=3)
    assert stale.value.extra == {"current": 1}
    with pytest.raises(LabelConflictError) as absent:
        await registry.promote(name, "canary", 2, expected_current=1)
    assert absent.value.extra == {"current": None}
    assert "label absent" in absent.value.message
    assert await registry.labels(name) == {"production": 1}

    second = await registry.promote(name, "production", 2, expected_current=1, actor="bob")
    assert second == LabelMove(name, "production", 1, 2, changed=True)
    unconditional = await registry.promote(name, "production", 3, actor="bob")
    assert unconditional == LabelMove(name, "production", 2, 3, changed=True)
    assert await registry.labels(name) == {"production": 3}
    assert [(e.from_version, e.to_version) for e in await moves(registry, name)] == [
        (None, 1),
        (1, 2),
        (2, 3),
    ]


async def test_promote_to_the_current_version_is_a_no_op(registry: Registry) -> None:
    name = unique()
    await publish_versions(registry, name, 2)
    await registry.promote(name, "production", 1)
    audit = await registry.history(name)

    again = await registry.promote(name, "production", 1, actor="bob")
    assert again == LabelMove(name, "production", 1, 1, changed=False)
    checked = await registry.promote(name, "production", 1, expected_current=1)
    assert checked.changed is False
    assert await registry.history(name) == audit
    assert await registry.label_stack(name, "production") == []
    with pytest.raises(NoEarlierVersionError):
        await registry.rollback(name, "production")


async def test_unknown_artifact_version_and_label(registry: Registry) -> None:
    name = unique()
    await publish_versions(registry, name, 3)
    await registry.promote(name, "production", 1)
    audit = await registry.history(name)

    with pytest.raises(UnknownVersionError) as no_version:
        await registry.promote(name, "production", 4)
    assert no_version.value.status_code == 404
    assert no_version.value.field == "version"
    assert f"{name} has no version 4" in no_version.value.message
    with pytest.raises(UnknownLabelError) as no_label:
        await registry.rollback(name, "canary")
    assert no_label.value.status_code == 404
    assert no_label.value.field == "label"
    assert await registry.history(name) == audit

    missing = unique("missing")
    with pytest.raises(UnknownArtifactError) as no_artifact:
        await registry.promote(missing, "production", 1)
    assert no_artifact.value.status_code == 404
    assert no_artifact.value.code == "unknown_artifact"
    assert no_artifact.value.field == "name"
    assert repr(missing) in no_artifact.value.message
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: registry.rollback(missing, "production"),
        lambda: registry.resolve(missing),
        lambda: registry.resolve(f"{missing}@2"),
        lambda: registry.labels(missing),
        lambda: registry.history(missing),
        lambda: registry.versions(missing),
    ]
    for call in calls:
        with pytest.raises(UnknownArtifactError):
            await call()
    with pytest.raises(MalformedReferenceError):
        await registry.promote(name, "Production", 1)


# -- resolve --------------------------------------------------------------------------------


async def test_resolve_name_label_and_version(registry: Registry) -> None:
    name = unique()
    published = await publish_versions(registry, name, 3)
    await registry.promote(name, "production", 2)
    await registry.promote(name, "canary", 3)

    assert await registry.resolve(name) == published[1]
    assert await registry.resolve(f"{name}@production") == published[1]
    assert await registry.resolve(f"{name}@canary") == published[2]
    assert await registry.resolve(f"{name}@1") == published[0]
    assert await registry.labels(name) == {"canary": 3, "production": 2}

    with pytest.raises(UnknownLabelError) as no_label:
        await registry.resolve(f"{name}@staging")
    assert no_label.value.status_code == 404
    assert no_label.value.field == "label"
    assert "staging" in no_label.value.message
    with pytest.raises(UnknownVersionError) as no_version:
        await registry.resolve(f"{name}@9")
    assert no_version.value.field == "version"
    with pytest.raises(MalformedReferenceError) as malformed:
        await registry.resolve(f"{name}@@2")
    assert malformed.value.field == "ref"


async def test_bare_name_without_production_label(registry: Registry) -> None:
    name = unique()
    await publish_versions(registry, name, 1)
    with pytest.raises(UnknownLabelError, match="production"):
        await registry.resolve(name)
    await registry.promote(name, "production", 1)
    assert (await registry.resolve(name)).version == 1


# -- rollback -----------------------------------------------------------------------------------


async def test_rollback_follows_the_label_history(registry: Registry) -> None:
    name = unique()
    await publish_versions(registry, name, 3)
    for version in (1, 3, 2):
        await registry.promote(name, "production", version)
    assert await registry.label_stack(name, "production") == [1, 3]
    assert (await registry.resolve(name)).version == 2

    back = await registry.rollback(name, "production", actor="dave")
    assert back == LabelMove(name, "production", 2, 3, changed=True)  # not 2 - 1
    assert (await registry.resolve(name)).version == 3
    assert await registry.label_stack(name, "production") == [1]

    with pytest.raises(LabelConflictError) as conflict:
        await registry.rollback(name, "production", expected_current=2)
    assert conflict.value.extra == {"current": 3}
    assert await registry.labels(name) == {"production": 3}

    back = await registry.rollback(name, "production", expected_current=3)
    assert back == LabelMove(name, "production", 3, 1, changed=True)
    assert (await registry.resolve(name)).version == 1
    audit = await registry.history(name)

    with pytest.raises(NoEarlierVersionError) as exhausted:
        await registry.rollback(name, "production")
    assert exhausted.value.status_code == 409
    assert exhausted.value.code == "no_earlier_version"
    assert exhausted.value.field == "label"
    assert "version 1" in exhausted.value.message
    assert await registry.labels(name) == {"production": 1}
    assert await registry.history(name) == audit


async def test_rollback_stacks_are_per_label(registry: Registry) -> None:
    name = unique()
    await publish_versions(registry, name, 3)
    await registry.promote(name, "production", 1)
    await registry.promote(name, "canary", 2)
    await registry.promote(name, "canary", 3)
    await registry.promote(name, "production", 2)
    assert await registry.label_stack(name, "canary") == [2]
    assert await registry.label_stack(name, "production") == [1]
    assert (await registry.rollback(name, "canary")).to_version == 2
    assert await registry.labels(name) == {"canary": 2, "production": 2}
    # Promoting after a rollback pushes the rolled-back-to version, as any move does.
    await registry.promote(name, "canary", 1)
    assert await registry.label_stack(name, "canary") == [2]
    assert (await registry.rollback(name, "canary")).to_version == 2


# -- audit, diff, list ---------------------------------------------------------------------------


async def test_history_records_actor_time_action_and_move(registry: Registry) -> None:
    name = unique()
    start = time.time()
    await publish_versions(registry, name, 2, actor="alice")
    await registry.promote(name, "production", 1, actor="bob")
    await registry.promote(name, "production", 2, actor="carol")
    await registry.rollback(name, "production", actor="dave")
    await registry.promote(name, "canary", 2)
    end = time.time()

    history = await registry.history(name)
    assert [
        (e.action, e.actor, e.label, e.version, e.from_version, e.to_version) for e in history
    ] == [
        ("publish", "alice", None, 1, None, None),
        ("publish", "alice", None, 2, None, None),
        ("promote", "bob", "production", None, None, 1),
        ("promote", "carol", "production", None, 1, 2),
        ("rollback", "dave", "production", None, 2, 1),
        ("promote", default_actor(), "canary", None, None, 2),
    ]
    timestamps = [e.ts for e in history]
    assert timestamps == sorted(timestamps)
    assert all(start - 0.01 <= ts <= end + 0.01 for ts in timestamps)

    wire: list[dict[str, Any]] = msgspec.to_builtins(history)
    assert wire[3] == {
        "ts": history[3].ts,
        "actor": "carol",
        "action": "promote",
        "label": "production",
        "from": 1,
        "to": 2,
    }
    assert {"actor", "ts", "action", "from", "to"} <= wire[4].keys()
    assert await registry.history(name, limit=2) == history[-2:]


async def test_diff_between_versions_and_labels(registry: Registry) -> None:
    name = unique()
    await registry.publish(
        name, "Q: {{ question }}\nA:\n", {"variables": ["question"], "description": "first"}
    )
    await registry.publish(
        name, "Question: {{ question }}\nA:\n", {"variables": ["question"], "description": "second"}
    )
    diff = await registry.diff(name, "1", "2")
    lines = diff.splitlines()
    assert lines[0] == f"--- {name}@1"
    assert lines[1] == f"+++ {name}@2"
    assert "-description: first" in lines
    assert "+description: second" in lines
    assert "-Q: {{ question }}" in lines
    assert "+Question: {{ question }}" in lines
    assert " A:" in lines
    assert not any(line.startswith(("-A:", "+A:")) for line in lines)
    assert lines.index("-description: first") < lines.index("-Q: {{ question }}")

    await registry.promote(name, "production", 1)
    await registry.promote(name, "canary", 2)
    assert await registry.diff(name, "production", "canary") == diff
    assert await registry.diff(name, "2", "canary") == ""
    with pytest.raises(UnknownVersionError):
        await registry.diff(name, "1", "7")


async def test_list_summarises_artifacts(registry: Registry) -> None:
    assert await registry.list() == []
    first, second = unique("a"), unique("b")
    await publish_versions(registry, first, 3)
    await registry.publish(first, f"{QA} (v1)", VARIABLES)  # identical: no new version
    await publish_versions(registry, second, 1)
    await registry.promote(first, "production", 2)
    await registry.promote(first, "canary", 3)

    assert await registry.list() == [
        ArtifactSummary(first, latest_version=3, labels={"canary": 3, "production": 2}),
        ArtifactSummary(second, latest_version=1, labels={}),
    ]


async def test_registries_with_other_prefixes_do_not_see_each_other(
    registry_backend: RegistryBackend, registry: Registry
) -> None:
    other = await registry_backend.registry(
        settings=RegistrySettings(key_prefix=registry_backend.settings.key_prefix + "-other")
    )
    name = unique()
    await publish_versions(registry, name, 1)
    assert await other.list() == []
    with pytest.raises(UnknownArtifactError):
        await other.resolve(f"{name}@1")


# -- races --------------------------------------------------------------------------------------


async def test_concurrent_promotes_with_the_same_expectation(
    registry_backend: RegistryBackend,
) -> None:
    first = await registry_backend.registry(new_client=True)
    second = await registry_backend.registry(new_client=True)
    name = unique()
    await publish_versions(first, name, 4)

    current: int = ABSENT
    winners: list[int] = []
    for round_ in range(6):
        candidates = [v for v in (1, 2, 3, 4) if v != current]
        a, b = candidates[round_ % 3], candidates[(round_ + 1) % 3]
        results = await asyncio.gather(
            first.promote(name, "production", a, expected_current=current, actor="first"),
            second.promote(name, "production", b, expected_current=current, actor="second"),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, LabelMove)]
        lost = [r for r in results if isinstance(r, LabelConflictError)]
        assert len(won) == 1, results
        assert len(lost) == 1, results
        move = won[0]
        assert move.changed
        assert move.from_version == (current or None)
        assert lost[0].extra == {"current": move.to_version}
        current = move.to_version
        winners.append(current)
        assert await first.labels(name) == {"production": current}
        assert await second.labels(name) == {"production": current}

    audit = await moves(first, name)
    assert [e.to_version for e in audit] == winners
    assert await first.label_stack(name, "production") == winners[:-1]
