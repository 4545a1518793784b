"""Start-up progress of `trivium up`: one line per phase with its elapsed time, on stderr."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

__all__ = ("Phase", "Progress")


@dataclass
class Phase:
    name: str
    details: list[str] = field(default_factory=list)
    """Lines printed under the phase's result (URLs, what was built)."""
    seconds: float = 0.0


class Progress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.phases: list[Phase] = []
        self._started = time.monotonic()

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """A spinner while the phase runs, then `✓ name  12.3 s` (or `✗` if it raised)."""
        phase = Phase(name)
        self.phases.append(phase)
        start = time.monotonic()
        ok = False
        try:
            with self.console.status(f"{escape(name)} ...", spinner="dots"):
                yield phase
            ok = True
        finally:
            phase.seconds = time.monotonic() - start
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            self.console.print(f"{mark} {escape(name):<22} [cyan]{phase.seconds:6.1f} s[/]")
            for detail in phase.details:
                self.console.print(f"    {escape(detail)}")

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def note(self, text: str) -> None:
        self.console.print(escape(text), soft_wrap=True)
