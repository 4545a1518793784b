"""Watching a supervised stack from a test: child processes, waiting, supervisor metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

__all__ = ("children", "eventually", "is_zombie_or_gone", "metric")

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def children(parent: int, needle: str) -> list[int]:
    """Pids of `parent`'s child processes whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and needle in cmdline:
            found.append(int(entry.name))
    return found


def is_zombie_or_gone(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return "zombie" if stat.rpartition(")")[2].split()[0] == "Z" else "running"


def metric(metrics_url: str, name: str, service: str) -> float | None:
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.TransportError:
        return None
    prefix = f'{name}{{service="{service}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None
