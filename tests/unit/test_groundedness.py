"""Token-overlap groundedness: the share of an answer's content words found in its passages."""

from __future__ import annotations

import pytest

from trivium.gateway.invoke.groundedness import SCORERS, TokenOverlap

PASSAGES = [
    "Refunds reach the original card within five business days.",
    "Reset a forgotten password from the login page.",
]


@pytest.fixture
def scorer() -> TokenOverlap:
    return TokenOverlap()


def test_registered_by_name() -> None:
    assert isinstance(SCORERS["token-overlap"], TokenOverlap)


def test_a_fully_supported_answer_scores_one(scorer: TokenOverlap) -> None:
    assert scorer.score("Refunds reach the card within five days.", PASSAGES) == 1.0


def test_an_unsupported_answer_scores_zero(scorer: TokenOverlap) -> None:
    assert scorer.score("Our office cat is called Biscuit.", PASSAGES) == 0.0


def test_a_partial_answer_scores_its_exact_share(scorer: TokenOverlap) -> None:
    # content words: refunds, reach, card, instantly (stop words dropped): 3 of 4 supported
    assert scorer.score("Refunds reach the card instantly.", PASSAGES) == 0.75
    # repeats count each time: refunds refunds biscuit -> 2 of 3
    assert scorer.score("refunds, refunds, biscuit", PASSAGES) == pytest.approx(2 / 3)


def test_matching_ignores_case_and_punctuation(scorer: TokenOverlap) -> None:
    assert scorer.score("REFUNDS... Reach; CARD!", PASSAGES) == 1.0


def test_citation_markers_and_stop_words_are_ignored(scorer: TokenOverlap) -> None:
    # Without stripping, "1"/"2" and "it"/"is"/"the" would be unsupported words.
    assert scorer.score("It is the login page [1][2].", PASSAGES) == 1.0
    assert scorer.score("Biscuit [1].", PASSAGES) == 0.0
    # A number that is not a citation marker is a word like any other.
    assert scorer.score("login 42", PASSAGES) == 0.5


@pytest.mark.parametrize("answer", ["", "   ", "[1] [2]", "it is the", "..."])
def test_nothing_to_judge_is_none(scorer: TokenOverlap, answer: str) -> None:
    assert scorer.score(answer, PASSAGES) is None


def test_no_passages_support_nothing(scorer: TokenOverlap) -> None:
    assert scorer.score("Refunds reach the card.", []) == 0.0
