"""The running stack's state file, so that other `trivium` commands find what `trivium up` runs.

`trivium up` writes `<data_dir>/stack.json` when it starts (atomically; again when every
service is up) and removes it when it stops:

    {"pid": 4242, "phase": "running", "started_at": "2025-...Z", "data_dir": "/abs/var",
     "config_file": null, "redis_url": "unix:///abs/var/redis/redis.sock",
     "redis_embedded": true, "services": {"gateway": "http://127.0.0.1:8000", ...},
     "supervisor_metrics": "http://127.0.0.1:8100/metrics"}

A state file whose `pid` no longer runs is stale and ignored.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

__all__ = ("STATE_FILE", "StackState", "find_running_stack", "read_live_state", "remove_state")

STATE_FILE = "stack.json"


class StackState(msgspec.Struct, frozen=True):
    pid: int
    phase: str
    """`starting` until every service answers, then `running`."""
    started_at: str
    data_dir: str
    config_file: str | None
    redis_url: str
    redis_embedded: bool
    services: dict[str, str]
    """Service name -> base URL."""
    supervisor_metrics: str | None

    def write(self) -> Path:
        path = Path(self.data_dir) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{STATE_FILE}.{os.getpid()}")
        partial.write_bytes(msgspec.json.format(msgspec.json.encode(self), indent=2) + b"\n")
        partial.replace(path)
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_live_state(data_dir: Path) -> StackState | None:
    """The state of the stack running from `data_dir`, or None (no file, unreadable, stale)."""
    try:
        state = msgspec.json.decode((data_dir / STATE_FILE).read_bytes(), type=StackState)
    except (OSError, msgspec.DecodeError):
        return None
    return state if _alive(state.pid) else None


def find_running_stack(start: Path, data_dir_name: str = "var") -> StackState | None:
    """A live stack whose data directory is `<dir>/var` for `start` or one of its parents."""
    for directory in (start, *start.parents):
        state = read_live_state(directory / data_dir_name)
        if state is not None:
            return state
    return None


def remove_state(data_dir: Path, pid: int) -> None:
    """Remove the state file if it is `pid`'s (a second `up` must not remove the first's)."""
    path = data_dir / STATE_FILE
    try:
        state = msgspec.json.decode(path.read_bytes(), type=StackState)
    except (OSError, msgspec.DecodeError):
        return
    if state.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
