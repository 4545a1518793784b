"""A background loop that ticks on an interval, survives a failing tick, and stops cleanly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from trivium.common.aio import Periodic


async def test_it_ticks_survives_a_failing_tick_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    ticks: list[int] = []
    four = asyncio.Event()

    async def tick() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 4:
            four.set()
        if len(ticks) == 2:
            raise RuntimeError("a bug in one flush")

    loop = Periodic("test-loop", 0.01, tick, logging.getLogger("test.periodic"))
    loop.start()
    loop.start()  # idempotent: still one task
    await asyncio.wait_for(four.wait(), timeout=5)
    await loop.stop()
    after_stop = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == after_stop, "ticked after stop"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "test-loop crashed"
    ]
