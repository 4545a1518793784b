"""The judge's strict answer format and input, and a fine-tune arm's training cost inputs."""

from __future__ import annotations

from typing import Any

import pytest

from trivium.common.contracts.datasets import DatasetRow, Expected, RowMessage
from trivium.common.errors import NotFoundError
from trivium.trials.judge import judge_input, judge_of, parse_verdict
from trivium.trials.training import gpu_hour_price, train_seconds


@pytest.mark.parametrize(
    ("text", "scores"),
    [
        ("faithfulness: 0.8\ncorrectness: 0.6", (0.8, 0.6)),
        ("  Correctness: 1\n\nFaithfulness : 0.25  \n", (0.25, 1.0)),
        ("faithfulness: 0\ncorrectness: 1.0", (0.0, 1.0)),
        ("faithfulness: 0.8", None),  # one number
        ("faithfulness: 0.8\ncorrectness: 1.5", None),  # out of [0, 1]
        ("faithfulness: 0.8\nfaithfulness: 0.6", None),  # a repeat
        ("Sure! faithfulness: 0.8\ncorrectness: 0.6", None),  # prose around it
        ("faithfulness: 0.8\ncorrectness: 0.6\nbecause ...", None),
        ("faithfulness: high\ncorrectness: 0.6", None),
        ("", None),
    ],
)
def test_the_verdict_format_is_strict(text: str, scores: tuple[float, float] | None) -> None:
    assert parse_verdict(text) == scores


def test_the_judge_reads_the_question_the_answer_the_reference_and_the_evidence() -> None:
    row = DatasetRow(
        id="c1", expected=Expected(answer="42"), input={"question": "Why?", "case": "c1"}
    )
    assert judge_input(row, "Because.", ["p1"]) == {
        "question": "Why?",
        "answer": "Because.",
        "reference": "42",
        "evidence": ["p1"],
    }
    chat = DatasetRow(
        id="c2",
        expected=Expected(label="bug"),
        messages=[RowMessage(role="user", content="It crashes")],
    )
    assert judge_input(chat, "bug", []) == {
        "question": "It crashes",
        "answer": "bug",
        "reference": "bug",
        "evidence": [],
    }
    several = DatasetRow(id="c3", expected=Expected(doc_ids=["d"]), input={"b": "2", "a": "1"})
    assert judge_input(several, "x", [])["question"] == "a: 1\nb: 2"
    assert judge_input(several, "x", [])["reference"] == ""


def test_an_unknown_judge_feature_is_named() -> None:
    policy: dict[str, Any] = {"features": {"grader": {"route": "prompt"}}}
    assert judge_of(policy, "grader").road == "prompt"
    with pytest.raises(NotFoundError, match="grader") as caught:
        judge_of(policy, "nope")
    assert caught.value.field == "judge"


def test_only_a_gpu_hour_price_and_a_recorded_training_time_price_training() -> None:
    policy = {
        "upstreams": {
            "gpu": {"price": {"kind": "gpu", "gpu_hour_usd": 2.5, "tokens_per_hour": 10}},
            "api": {"price": {"kind": "tokens", "prompt_per_1k": 1, "completion_per_1k": 2}},
            "free": {"price": None},
        }
    }
    assert gpu_hour_price(policy, "gpu") == 2.5
    assert [gpu_hour_price(policy, u) for u in ("api", "free", "missing", None)] == [None] * 4
    assert train_seconds({"timings": {"train_seconds": 90}}) == 90.0
    untimed: list[dict[str, Any]] = [
        {},
        {"timings": {}},
        {"timings": {"train_seconds": True}},
        {"timings": {"train_seconds": -1}},
        {"timings": "90"},
    ]
    assert [train_seconds(metadata) for metadata in untimed] == [None] * len(untimed)
