"""The extractive road's answer: the passages themselves, numbered like their citations."""

from __future__ import annotations

from tests.support.search_hits import hit
from trivium.gateway.invoke.extractive import NO_PASSAGE, extractive_answer


def test_passages_are_numbered_in_rank_order_with_whitespace_collapsed() -> None:
    answer = extractive_answer([hit("Refunds take\n five days."), hit("Cards  are kept.")], 100)
    assert answer.splitlines() == ["[1] Refunds take five days.", "[2] Cards are kept."]


def test_the_answer_keeps_to_the_feature_length() -> None:
    hits = [hit("a" * 30), hit("b" * 30), hit("c" * 30)]
    answer = extractive_answer(hits, max_tokens=20)  # 80 characters
    assert answer.splitlines() == ["[1] " + "a" * 30, "[2] " + "b" * 30]
    assert len(extractive_answer([hit("z" * 500)], max_tokens=10)) == 40


def test_no_passage_says_so() -> None:
    assert extractive_answer([], 50) == NO_PASSAGE
