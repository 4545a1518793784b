"""Per-case scores: labels named in free text, SQuAD-style text scores, retrieval from citations."""

from __future__ import annotations

import pytest

from trivium.common.contracts.datasets import Expected
from trivium.common.contracts.trials import CaseResult, CaseScores
from trivium.trials.scoring import (
    exact_match,
    normalise_answer,
    normalise_label,
    recall_at_k,
    reciprocal_rank,
    score_case,
    token_f1,
)

LABELS = ["billing", "shipping", "card", "card decline"]


@pytest.mark.parametrize(
    ("output", "label"),
    [
        ("billing", "billing"),
        ('  "Billing."  ', "billing"),
        ("**SHIPPING**", "shipping"),
        ("billing: the customer was charged twice", "billing"),
        ("Billing - charged twice", "billing"),
        ("Card decline. The bank refused it", "card decline"),
        ("I would say shipping, clearly", "shipping"),
        ("a card decline issue", "card decline"),
        ("my card broke", "card"),
        ("billing or shipping", None),
        ("either billing or shipping", None),
        ("refund", None),
        ("", None),
        ("billings", None),
    ],
)
def test_normalise_label_reads_the_label_an_answer_names(output: str, label: str | None) -> None:
    assert normalise_label(output, LABELS) == label


def test_normalise_label_returns_the_label_as_the_dataset_spells_it() -> None:
    assert normalise_label("yes", ["Yes", "No", "Maybe"]) == "Yes"


def test_squad_normalisation() -> None:
    assert normalise_answer("The  Eiffel-Tower, in «Paris»!") == "eiffeltower in paris"
    assert normalise_answer("An apple a day") == "apple day"


@pytest.mark.parametrize(
    ("pred", "ref", "f1"),
    [
        ("the cat sat on the mat", "a cat sat", 2 / 3),  # P 2/4, R 2/2
        ("go go go", "go stop", 0.4),  # overlap 1 (counts clip): P 1/3, R 1/2
        ("Paris.", "paris", 1.0),
        ("London", "Paris", 0.0),
        ("", "", 1.0),
        ("the", "", 1.0),  # both empty once articles go
        ("something", "", 0.0),
        ("", "Paris", 0.0),
    ],
)
def test_token_f1_by_hand(pred: str, ref: str, f1: float) -> None:
    assert token_f1(pred, ref) == pytest.approx(f1, abs=1e-12)


def test_exact_match_after_normalisation() -> None:
    assert exact_match("The Cat!", "cat")
    assert not exact_match("cats", "cat")


def test_recall_and_mrr_from_deduplicated_citations() -> None:
    cited = ["d3", "d1", "d3", "d2"]  # distinct, in order: d3, d1, d2
    expected = ["d1", "d2", "d9"]
    assert recall_at_k(cited, expected) == pytest.approx(2 / 3)
    assert recall_at_k(cited, expected, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(cited, expected, k=3) == pytest.approx(2 / 3)  # the repeat takes no slot
    assert reciprocal_rank(cited, expected) == 0.5
    assert reciprocal_rank(cited, expected, k=1) == 0.0
    assert reciprocal_rank(["d2", "d2"], expected) == 1.0
    assert recall_at_k([], expected) == 0.0
    assert reciprocal_rank([], expected) == 0.0


def test_recall_refuses_what_is_undefined() -> None:
    with pytest.raises(ValueError, match="empty"):
        recall_at_k(["d1"], [])
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(["d1"], ["d1"], k=0)


def _result(**fields: object) -> CaseResult:
    base: dict[str, object] = {"case_id": "c1", "arm": "rag", "ok": True, "status": 200}
    return CaseResult(**(base | fields))  # type: ignore[arg-type]


def test_score_case_scores_everything_expected_allows() -> None:
    expected = Expected(label="shipping", answer="the parcel is late", doc_ids=["d1", "d2"])
    result = _result(
        output="shipping: the parcel is late",
        citations=["d2", "d7"],
        groundedness=0.4,
        scores=CaseScores(judge_faithfulness=0.8, judge_correctness=0.6),
    )
    scores = score_case(expected, result, labels=LABELS, min_groundedness=0.5)
    assert scores == CaseScores(
        correct=True,
        expected_label="shipping",
        predicted_label="shipping",
        out_of_labels=False,
        exact_match=False,
        token_f1=2 * 0.75 * 1 / 1.75,  # 3 of 4 tokens (parcel is late), all of the reference
        recall_at_k=0.5,
        reciprocal_rank=1.0,
        ungrounded=True,
        judge_faithfulness=0.8,
        judge_correctness=0.6,
    )


def test_score_case_leaves_out_what_the_case_cannot_say() -> None:
    scores = score_case(
        Expected(label="billing"),
        _result(output="refund please", groundedness=0.9),
        labels=LABELS,
        min_groundedness=None,
    )
    assert scores == CaseScores(
        correct=False, expected_label="billing", predicted_label=None, out_of_labels=True
    )


def test_an_error_is_not_scored_and_a_withheld_answer_is_wrong() -> None:
    expected = Expected(label="billing", answer="x")
    failed = _result(ok=False, status=503, error="upstream_unavailable")
    assert score_case(expected, failed, labels=LABELS, min_groundedness=0.5) == CaseScores()
    withheld = score_case(expected, _result(output=None), labels=LABELS, min_groundedness=None)
    assert withheld.correct is False
    assert withheld.out_of_labels is True
    assert withheld.token_f1 == 0.0
