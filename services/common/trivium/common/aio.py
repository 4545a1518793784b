"""Small asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ("Periodic", "cancel_and_wait")


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Periodic:
    """`tick()` every `interval_s` in a background task, from `start()` until `stop()`.

    An exception in a tick is logged with its stack and the loop goes on: a bug in one
    flush must not end the flushes that follow.
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        tick: Callable[[], Awaitable[None]],
        log: logging.Logger,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self._tick = tick
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._tick()
            except Exception:
                self._log.exception(f"{self.name} crashed")
