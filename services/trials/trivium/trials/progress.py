"""A progress bar per arm (rich) while a trial runs, on stderr."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from trivium.common.contracts.trials import CaseResult

__all__ = ("ArmProgressBars", "RunObserver")


class RunObserver(Protocol):
    """What the runner tells as it goes: each arm's (done, total) at the start, each result."""

    def start(self, arms: Mapping[str, tuple[int, int]]) -> None: ...

    def advance(self, result: CaseResult) -> None: ...

    def stop(self) -> None: ...


class ArmProgressBars:
    """One bar per arm: cases done of all, errors so far, elapsed and remaining time."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self._tasks: dict[str, TaskID] = {}
        self._errors: dict[str, int] = {}

    def start(self, arms: Mapping[str, tuple[int, int]]) -> None:
        for arm, (done, total) in arms.items():
            self._errors[arm] = 0
            self._tasks[arm] = self._progress.add_task(arm, total=total, completed=done, errors=0)
        self._progress.start()

    def advance(self, result: CaseResult) -> None:
        if not result.ok:
            self._errors[result.arm] += 1
        self._progress.update(self._tasks[result.arm], advance=1, errors=self._errors[result.arm])

    def stop(self) -> None:
        self._progress.stop()
