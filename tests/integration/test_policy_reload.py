"""The policy holder: hot reload from the file, bad files rejected and counted, no torn reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from trivium.gateway.app import create_app
from trivium.gateway.config import GatewaySection, GatewaySettings
from trivium.gateway.policy import InvalidPolicyError, PolicyHolder
from trivium.gateway.policy.holder import NoPolicyFileError

POLICY = """\
version: {version}
upstreams:
  local: {{url: "http://127.0.0.1:8002/v1", model: base}}
features:
  triage:
    route: prompt
    template: triage@production
    upstream: local
    limits: {{max_tokens: {max_tokens}}}
"""


def policy_text(version: int = 1, max_tokens: int = 8) -> str:
    return POLICY.format(version=version, max_tokens=max_tokens)


BROKEN = policy_text().replace("route: prompt", "route: finetune")  # finetune needs an adapter


def reloads(result: str) -> float:
    return REGISTRY.get_sample_value("trivium_policy_reloads_total", {"result": result}) or 0.0


def info(hash_: str, version: str) -> float | None:
    return REGISTRY.get_sample_value("trivium_policy_info", {"hash": hash_, "version": version})


async def write(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text)


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    return path


@pytest.fixture
async def watched(policy_file: Path) -> AsyncIterator[PolicyHolder]:
    holder = PolicyHolder(policy_file, poll_s=0.01)
    holder.start()
    yield holder
    await holder.stop()


async def test_a_changed_file_is_picked_up_by_the_watcher(
    watched: PolicyHolder, policy_file: Path
) -> None:
    first = watched.current
    assert first.policy.features["triage"].limits.max_tokens == 8
    assert first.source == str(policy_file)
    ok_before = reloads("ok")
    await write(policy_file, policy_text(version=2, max_tokens=16))
    await eventually(lambda: watched.current is not first)
    assert watched.current.policy.features["triage"].limits.max_tokens == 16
    assert watched.current.policy.version == 2
    assert watched.current.hash != first.hash
    assert watched.current.loaded_at >= first.loaded_at
    assert reloads("ok") == ok_before + 1
    assert info(watched.current.hash, "2") == 1.0
    assert info(first.hash, "1") is None  # the old label set is gone


async def test_a_bad_file_is_counted_once_and_the_last_good_policy_keeps_serving(
    watched: PolicyHolder, policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = watched.current
    invalid_before = reloads("invalid")
    with caplog.at_level(logging.ERROR, logger="trivium.gateway.policy.holder"):
        await write(policy_file, BROKEN)
        await eventually(lambda: reloads("invalid") == invalid_before + 1)
        await asyncio.sleep(0.1)  # ten more polls of the same bad content
    assert reloads("invalid") == invalid_before + 1
    assert watched.current is good
    [record] = caplog.records
    assert record.errors == [  # type: ignore[attr-defined]
        {"path": "features.triage.adapter", "message": "required by route finetune"}
    ]
    assert record.active_hash == good.hash  # type: ignore[attr-defined]

    with pytest.raises(InvalidPolicyError) as caught:
        await watched.reload()
    assert caught.value.field == "features.triage.adapter"
    assert reloads("invalid") == invalid_before + 2
    assert watched.current is good

    await write(policy_file, policy_text(version=3))
    await eventually(lambda: watched.current.policy.version == 3)


async def test_a_request_in_flight_keeps_the_policy_it_started_with(
    policy_file: Path,
) -> None:
    holder = PolicyHolder(policy_file)
    in_flight = holder.current
    await write(policy_file, policy_text(version=2, max_tokens=99))
    outcome = await holder.reload()
    assert (outcome.result, outcome.version) == ("ok", 2)
    assert outcome.hash == holder.current.hash
    assert in_flight.policy.version == 1
    assert in_flight.policy.features["triage"].limits.max_tokens == 8
    assert holder.current.policy.features["triage"].limits.max_tokens == 99


async def test_a_reformatted_file_is_unchanged(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file)
    before = holder.current
    unchanged_before = reloads("unchanged")
    await write(policy_file, "# reviewed by the PM\n" + policy_text().replace("{url", "{ url"))
    outcome = await holder.reload()
    assert (outcome.result, outcome.hash) == ("unchanged", before.hash)
    assert holder.current is before
    assert reloads("unchanged") == unchanged_before + 1


async def test_a_deleted_file_keeps_the_last_good_policy(
    watched: PolicyHolder, policy_file: Path
) -> None:
    good = watched.current
    invalid_before = reloads("invalid")
    await asyncio.to_thread(policy_file.unlink)
    await eventually(lambda: reloads("invalid") == invalid_before + 1)
    assert watched.current is good
    with pytest.raises(InvalidPolicyError, match="cannot read"):
        await watched.reload()


async def test_a_missing_file_at_start_is_an_empty_policy_until_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "later.yaml"
    with caplog.at_level(logging.WARNING, logger="trivium.gateway.policy.holder"):
        holder = PolicyHolder(path, poll_s=0.01)
    assert "policy file not found" in caplog.text
    assert holder.current.policy.features == {}
    assert holder.current.source == str(path)
    holder.start()
    try:
        await write(path, policy_text())
        await eventually(lambda: "triage" in holder.current.policy.features)
    finally:
        await holder.stop()


async def test_concurrent_reloads_and_watching_end_on_the_last_file(
    watched: PolicyHolder, policy_file: Path
) -> None:
    await write(policy_file, policy_text(version=5))
    outcomes = await asyncio.gather(*(watched.reload() for _ in range(5)))
    assert {outcome.hash for outcome in outcomes} == {watched.current.hash}
    assert watched.current.policy.version == 5


async def test_without_a_policy_file_reload_is_a_conflict() -> None:
    holder = PolicyHolder(None)
    assert holder.current.policy.features == {}
    assert holder.current.source is None
    with pytest.raises(NoPolicyFileError):
        await holder.reload()


def test_an_invalid_file_at_start_fails_app_creation(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    settings = GatewaySettings(gateway=GatewaySection(policy_file=path))
    with pytest.raises(InvalidPolicyError, match=r"features\.triage\.adapter: required by route"):
        create_app(settings)
