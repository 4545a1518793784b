"""The query micro-batcher: shared calls, each caller its own vector, bounded batches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from trivium.retriever.search.batching import QueryBatcher


class RecordingEmbedder:
    """A vector that names its text, and a log of the texts of every call."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(5)
        return [[float(len(text)), float(sum(map(ord, text)))] for text in texts]


def vector(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)))]


async def test_simultaneous_queries_share_one_call_and_get_their_own_vectors() -> None:
    embed = RecordingEmbedder()
    batcher = QueryBatcher(embed, max_batch=32, max_wait_s=0.005)
    texts = [f"query number {i}" + "x" * i for i in range(8)]
    results = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert results == [vector(t) for t in texts]
    assert embed.calls == [texts]


@pytest.mark.parametrize(("callers", "max_batch"), [(40, 16), (32, 32), (5, 1)])
async def test_no_batch_exceeds_its_bound(callers: int, max_batch: int) -> None:
    embed = RecordingEmbedder()
    batcher = QueryBatcher(embed, max_batch=max_batch, max_wait_s=0.005)
    texts = [f"q{i}" * (1 + i % 3) for i in range(callers)]
    results = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert results == [vector(t) for t in texts]
    assert max(len(call) for call in embed.calls) <= max_batch
    assert sorted(t for call in embed.calls for t in call) == sorted(texts)
    assert len(embed.calls) == -(-callers // max_batch)


async def test_queries_arriving_while_the_model_is_busy_go_together_next() -> None:
    gate = threading.Event()
    embed = RecordingEmbedder(gate)
    batcher = QueryBatcher(embed, max_batch=4, max_wait_s=0)
    first = asyncio.ensure_future(batcher.embed("first"))
    await asyncio.to_thread(embed.entered.wait, 5)
    later = [asyncio.ensure_future(batcher.embed(f"later {i}")) for i in range(6)]
    await asyncio.sleep(0.01)
    assert embed.calls == [["first"]]  # the busy model took nothing more
    gate.set()
    assert await first == vector("first")
    assert [await f for f in later] == [vector(f"later {i}") for i in range(6)]
    assert embed.calls[1:] == [[f"later {i}" for i in range(4)], ["later 4", "later 5"]]


async def test_a_failed_call_fails_its_callers_and_the_next_batch_still_runs() -> None:
    calls = 0

    def flaky(texts: Sequence[str]) -> list[list[float]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model fell over")
        return [vector(t) for t in texts]

    batcher = QueryBatcher(flaky, max_batch=8, max_wait_s=0.001)
    failed = await asyncio.gather(batcher.embed("a"), batcher.embed("b"), return_exceptions=True)
    assert [str(e) for e in failed] == ["model fell over", "model fell over"]
    assert await batcher.embed("c") == vector("c")


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    embed = RecordingEmbedder()
    batcher = QueryBatcher(embed, max_batch=8, max_wait_s=0.01)
    gone = asyncio.ensure_future(batcher.embed("gone"))
    kept = asyncio.ensure_future(batcher.embed("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == vector("kept")
    assert embed.calls == [["kept"]]


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(RecordingEmbedder(), max_batch=0, max_wait_s=0.001)
    with pytest.raises(ValueError, match="max_wait_s"):
        QueryBatcher(RecordingEmbedder(), max_batch=1, max_wait_s=-1)
