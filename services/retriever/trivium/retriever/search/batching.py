"""Concurrent search queries share one embedding call (a micro-batcher).

A query that finds the model idle waits at most `max_wait_s` for company, then goes; queries
that arrive while the model is busy gather and go together as soon as it is free. A batch
never holds more than `max_batch` queries, and a full batch goes at once. Each caller gets the
vector of its own text; a failed call fails every caller of that batch, and a caller that is
cancelled simply stops waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from trivium.retriever.api.metrics import QUERY_BATCH

__all__ = ("QueryBatcher",)

Embed = Callable[[Sequence[str]], list[list[float]]]


class QueryBatcher:
    def __init__(self, embed: Embed, *, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_s not negative")
        self._embed = embed
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def embed(self, text: str) -> list[float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[float]] = loop.create_future()
        self._pending.append((text, future))
        if not self._busy:
            if len(self._pending) >= self.max_batch:
                self._go(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.max_wait_s, self._go, loop)
        return await future

    def _go(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = [(t, f) for t, f in self._pending if not f.done()]  # cancelled callers
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        if not batch:
            return
        self._busy = True
        task = loop.create_task(self._run(batch, loop))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: list[tuple[str, asyncio.Future[list[float]]]], loop: asyncio.AbstractEventLoop
    ) -> None:
        QUERY_BATCH.observe(len(batch))
        try:
            vectors = await asyncio.to_thread(self._embed, [text for text, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
        finally:
            self._busy = False
            if self._pending:  # they waited for the model already: no timer
                self._go(loop)
