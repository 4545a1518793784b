"""The runner's invoke request per case, and the gateway's answer as a `CaseResult`."""

from __future__ import annotations

import asyncio

import msgspec

from trivium.common.contracts.datasets import DatasetRow, Expected, RowMessage
from trivium.common.contracts.trials import CaseResult
from trivium.trials.results import case_result, invoke_body
from trivium.trials.work import ResultBuffer, WorkQueue

ANSWER = {
    "id": "ans_1",
    "feature": "faq",
    "route": "rag",
    "variant": None,
    "template": "qa@3",
    "adapter": None,
    "output": "Yes [1][2]",
    "citations": [
        {
            "index": 1,
            "doc_id": "d7",
            "chunk_id": "d7#0",
            "source": None,
            "offsets": [0, 9],
            "score": 0.9,
        },
        {
            "index": 2,
            "doc_id": "d2",
            "chunk_id": "d2#1",
            "source": None,
            "offsets": [3, 9],
            "score": 0.5,
        },
        {
            "index": 3,
            "doc_id": "d7",
            "chunk_id": "d7#4",
            "source": None,
            "offsets": [0, 4],
            "score": 0.4,
        },
    ],
    "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127},
    "cost_usd": 0.00042,
    "timings_ms": {
        "retrieve": 12.5,
        "rerank": 0.0,
        "render": 0.3,
        "generate": 80.0,
        "verify": 1.0,
        "total": 95.0,
    },
    "lineage": {"policy_hash": "abc"},
    "fallback": {"from": "finetune", "reason": "upstream_timeout"},
    "groundedness": 0.71,
    "verdict": "passed",
    "needs_review": False,
    "cached": False,
    "finish_reason": "stop",
    "something_new": {"the gateway": "may add fields"},
}


def test_an_invoke_response_becomes_a_case_result() -> None:
    result = case_result("c1", "rag", 200, msgspec.json.encode(ANSWER))
    assert result == CaseResult(
        case_id="c1",
        arm="rag",
        ok=True,
        status=200,
        output="Yes [1][2]",
        route="rag",
        citations=["d7", "d2"],  # each document once, in citation order
        timings_ms={
            "retrieve": 12.5,
            "render": 0.3,
            "generate": 80.0,
            "verify": 1.0,
            "total": 95.0,
        },
        prompt_tokens=120,
        completion_tokens=7,
        cost_usd=0.00042,
        fallback="upstream_timeout",
        groundedness=0.71,
        answer_id="ans_1",
    )


def test_a_withheld_answer_is_ok_without_output() -> None:
    body = ANSWER | {"output": None, "verdict": "withheld", "fallback": None}
    result = case_result("c1", "rag", 200, msgspec.json.encode(body))
    assert result.ok
    assert result.output is None
    assert result.fallback is None


def test_a_problem_is_an_error_result_with_its_code() -> None:
    problem = {
        "type": "urn:trivium:error:upstream_unavailable",
        "title": "t",
        "status": 503,
        "detail": "down",
        "code": "upstream_unavailable",
    }
    result = case_result("c1", "prompt", 503, msgspec.json.encode(problem))
    assert result == CaseResult(
        case_id="c1", arm="prompt", ok=False, status=503, error="upstream_unavailable"
    )


def test_an_error_without_a_problem_body_is_named_by_status() -> None:
    assert case_result("c1", "prompt", 502, b"<html>bad gateway</html>").error == "http_502"


def test_an_unreadable_success_is_an_error_not_a_crash() -> None:
    result = case_result("c1", "prompt", 200, b'{"id": 3}')
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("bad_response")


def test_invoke_body_carries_the_input_or_messages_and_the_trial_tag() -> None:
    row = DatasetRow(id="c1", expected=Expected(label="billing"), input={"ticket": "refund"})
    assert invoke_body(row, "trl_abcdefabcdef", "rag") == {
        "trial": {"id": "trl_abcdefabcdef", "arm": "rag"},
        "input": {"ticket": "refund"},
    }
    chat = DatasetRow(id="c2", expected=Expected(answer="4"), messages=[RowMessage("user", "2+2?")])
    assert invoke_body(chat, "trl_abcdefabcdef", "prompt")["messages"] == [
        {"role": "user", "content": "2+2?"}
    ]


def test_the_work_queue_takes_arms_in_turn_until_each_is_empty() -> None:
    queue = WorkQueue({"prompt": [1, 2, 3], "rag": [10], "finetune": []})
    assert len(queue) == 4
    taken = []
    while (item := queue.take()) is not None:
        taken.append(item)
    assert taken == [("prompt", 1), ("rag", 10), ("prompt", 2), ("prompt", 3)]


def _result(n: int) -> CaseResult:
    return CaseResult(case_id=f"c{n}", arm="prompt", ok=True, status=200)


async def test_results_are_stored_in_full_batches_and_the_rest_on_flush() -> None:
    batches: list[list[str]] = []

    async def store(batch: list[CaseResult]) -> None:
        batches.append([r.case_id for r in batch])

    buffer = ResultBuffer(store, batch_size=3, interval_s=3600)
    for n in range(7):
        await buffer.add(_result(n))
    assert batches == [["c0", "c1", "c2"], ["c3", "c4", "c5"]]
    await buffer.flush()
    assert batches[-1] == ["c6"]
    assert buffer.stored == 7


async def test_results_are_stored_when_the_interval_passes_even_below_a_batch() -> None:
    now = [0.0]
    batches: list[int] = []

    async def store(batch: list[CaseResult]) -> None:
        batches.append(len(batch))

    buffer = ResultBuffer(store, batch_size=200, interval_s=5, clock=lambda: now[0])
    await buffer.add(_result(0))
    now[0] = 5.0
    await buffer.add(_result(1))
    assert batches == [2]


async def test_a_store_that_fails_or_is_cancelled_keeps_its_results_for_the_next_flush() -> None:
    calls: list[int] = []
    release = asyncio.Event()

    async def store(batch: list[CaseResult]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            await release.wait()  # cancelled here

    buffer = ResultBuffer(store, batch_size=2, interval_s=3600)
    await buffer.add(_result(0))
    adding = asyncio.create_task(buffer.add(_result(1)))
    await asyncio.sleep(0.01)
    adding.cancel()
    await asyncio.gather(adding, return_exceptions=True)
    assert len(buffer) == 2
    await buffer.flush()
    assert calls == [2, 2]
    assert len(buffer) == 0
