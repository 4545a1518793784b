"""The runner's bookkeeping: each arm's pending cases, and results waiting to be stored."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from trivium.common.contracts.trials import CaseResult

__all__ = ("ResultBuffer", "WorkQueue")

T = TypeVar("T")


class WorkQueue(Generic[T]):
    """Each arm's pending cases, handed out round-robin across arms, so that every arm
    advances together and sees the same load on the gateway."""

    def __init__(self, pending: Mapping[str, Sequence[T]]) -> None:
        self._queues = {arm: deque(items) for arm, items in pending.items() if items}
        self._turns = deque(self._queues)

    def take(self) -> tuple[str, T] | None:
        """The next (arm, case), or None when every arm is done."""
        while self._turns:
            arm = self._turns[0]
            self._turns.rotate(-1)
            queue = self._queues[arm]
            if queue:
                item = queue.popleft()
                if not queue:
                    self._turns.remove(arm)
                return arm, item
        return None

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())


class ResultBuffer:
    """Results waiting to be stored, sent in batches of up to `batch_size` when a batch is full
    or `interval_s` has passed since the last store, so a killed run loses little.

    A result leaves the buffer only once its batch is stored: a store that fails or is cancelled
    leaves it for the next `flush` (storing is idempotent per arm and case)."""

    def __init__(
        self,
        store: Callable[[list[CaseResult]], Awaitable[Any]],
        *,
        batch_size: int = 200,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._clock = clock
        self._pending: list[CaseResult] = []
        self._lock = asyncio.Lock()
        self._last = clock()
        self.stored = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def add(self, result: CaseResult) -> None:
        self._pending.append(result)
        due = self._clock() - self._last >= self.interval_s
        if len(self._pending) >= self.batch_size or due:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            while self._pending:
                batch = self._pending[: self.batch_size]
                await self._store(batch)
                del self._pending[: len(batch)]  # others only append: the prefix is this batch
                self.stored += len(batch)
            self._last = self._clock()
