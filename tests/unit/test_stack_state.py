"""`data_dir/stack.json`: how other `trivium` commands find the stack `trivium up` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trivium.cli.stack import (
    STATE_FILE,
    StackState,
    find_running_stack,
    read_live_state,
    remove_state,
)


def state(data_dir: Path, pid: int) -> StackState:
    return StackState(
        pid=pid,
        phase="running",
        started_at="2025-01-01T00:00:00+00:00",
        data_dir=str(data_dir),
        config_file=None,
        redis_url=f"unix://{data_dir}/redis/redis.sock",
        redis_embedded=True,
        services={"gateway": "http://127.0.0.1:8000"},
        supervisor_metrics="http://127.0.0.1:8100/metrics",
    )


def dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def test_a_live_state_is_read_back_and_a_stale_one_ignored(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    written = state(data_dir, os.getpid())
    assert written.write() == data_dir / STATE_FILE
    assert read_live_state(data_dir) == written
    state(data_dir, dead_pid()).write()
    assert read_live_state(data_dir) is None, "a dead pid's state file is stale"
    (data_dir / STATE_FILE).write_text("{not json")
    assert read_live_state(data_dir) is None
    assert read_live_state(tmp_path / "missing") is None


def test_found_from_a_subdirectory_of_the_stack(tmp_path: Path) -> None:
    data_dir = tmp_path / "repo" / "var"
    state(data_dir, os.getpid()).write()
    deep = tmp_path / "repo" / "services" / "gateway"
    deep.mkdir(parents=True)
    found = find_running_stack(deep)
    assert found is not None
    assert found.data_dir == str(data_dir)
    assert find_running_stack(tmp_path / "elsewhere") is None


def test_only_the_writer_removes_its_state(tmp_path: Path) -> None:
    state(tmp_path, os.getpid()).write()
    remove_state(tmp_path, os.getpid() + 1)
    assert (tmp_path / STATE_FILE).exists()
    remove_state(tmp_path, os.getpid())
    assert not (tmp_path / STATE_FILE).exists()
