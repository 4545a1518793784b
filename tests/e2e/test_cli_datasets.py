"""`trivium datasets ...`, run as a user runs it, against a real Redis server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_trivium, trivium_env
from trivium.common.contracts.datasets import ROWS_PER_CHUNK
from trivium.common.redis_server import RedisServerProcess


@pytest.fixture
def env(tmp_path: Path, redis_server: RedisServerProcess) -> dict[str, str]:
    return trivium_env(tmp_path, redis_server.url)


def write_rows(path: Path, count: int, salt: str = "") -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t-{i}",
                    "input": {"ticket": f"ticket {i}{salt}"},
                    "expected": {"label": "billing"},
                }
            )
            + "\n"
            for i in range(count)
        )
    )
    return path


def test_publish_list_show_rows_promote_rollback_history(
    tmp_path: Path, env: dict[str, str]
) -> None:
    count = ROWS_PER_CHUNK + 5
    first = write_rows(tmp_path / "eval.jsonl", count)
    published = run_trivium(
        env, "datasets", "publish", str(first), "--name", "eval", "--label", "production"
    )
    assert published.returncode == 0, published.stderr
    assert f"published eval@1 ({count} rows)" in published.stdout
    assert "eval@production: - -> 1" in published.stdout
    again = run_trivium(env, "datasets", "publish", str(first), "--name", "eval")
    assert "unchanged, already eval@1" in again.stdout
    second = write_rows(tmp_path / "eval2.jsonl", 3, "!")
    assert run_trivium(env, "datasets", "publish", str(second), "--name", "eval").returncode == 0
    assert run_trivium(env, "datasets", "promote", "eval", "2").returncode == 0

    listed = run_trivium(env, "datasets", "list")
    assert listed.stdout.split()[:3] == ["eval", "v2", "production=2"]
    shown = run_trivium(env, "datasets", "show", "eval@1")
    assert f"rows: {count}" in shown.stdout
    assert "2 chunks" in shown.stdout
    assert "label set: billing" in shown.stdout
    manifest = json.loads(run_trivium(env, "datasets", "show", "eval", "--json").stdout)
    assert (manifest["ref"], manifest["manifest"]["rows"]) == ("eval@2", 3)

    rows = run_trivium(
        env, "datasets", "rows", "eval@1", "--offset", str(ROWS_PER_CHUNK - 1), "--limit", "3"
    )
    assert [json.loads(line)["id"] for line in rows.stdout.splitlines()] == [
        f"t-{i}" for i in range(ROWS_PER_CHUNK - 1, ROWS_PER_CHUNK + 2)
    ]

    rolled = run_trivium(env, "datasets", "rollback", "eval")
    assert "eval@production: 2 -> 1 (rolled back)" in rolled.stdout
    history = run_trivium(env, "datasets", "history", "eval", "--json")
    assert [e["action"] for e in json.loads(history.stdout)] == [
        "publish",
        "promote",
        "publish",
        "promote",
        "rollback",
    ]


def test_a_bad_file_names_every_line_and_publishes_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bad = write_rows(tmp_path / "bad.jsonl", 2)
    with bad.open("a") as handle:
        handle.write('{"id": "t-0", "input": {}, "expected": {"label": "x"}}\n')
        handle.write('{"id": "t-9", "expected": {}}\n')
    result = run_trivium(env, "datasets", "publish", str(bad), "--name", "broken")
    assert result.returncode == 1
    assert f"{bad}:3: id: 't-0' is also the id of line 1" in result.stderr
    assert f"{bad}:4: input: give exactly one of `input` and `messages`" in result.stderr
    assert f"{bad}:4: expected: needs at least one of label, answer, doc_ids" in result.stderr
    assert "3 error(s); nothing published" in result.stderr
    missing = run_trivium(env, "datasets", "show", "broken")
    assert missing.returncode == 1
    assert "no dataset named 'broken'" in missing.stderr
