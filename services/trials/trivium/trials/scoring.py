"""One answer against one case's `expected`: the per-case scores every arm is judged by.

Pure functions, no I/O. Text answers use SQuAD's normalisation (lowercase, punctuation and the
articles a/an/the removed, whitespace collapsed); retrieval scores read the cited documents'
ids in citation order, each document counted once (its first citation).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from trivium.common.contracts.datasets import Expected
from trivium.common.contracts.trials import CaseResult, CaseScores

__all__ = (
    "exact_match",
    "normalise_answer",
    "normalise_label",
    "recall_at_k",
    "reciprocal_rank",
    "score_case",
    "token_f1",
)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
# Wrapping a model may put around a bare label: quotes, markdown emphasis, a final full stop.
_LABEL_WRAPPING = " \t\r\n\"'`*_.,:;!?()[]{}<>"
# A label is named as a whole word: no letter, digit, underscore or hyphen on either side.
_WORD_EDGE = r"[\w-]"
# A leading label ends the answer or is set apart: `billing: ...`, `Billing. ...`, `billing - ...`.
_LABEL_THEN = r"(?:\s*$|\s*[:.,;!?\n]|\s+[-\u2013\u2014]\s)"


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalise_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, no punctuation (ASCII's and Unicode's), no articles."""
    lowered = "".join(c for c in text.lower() if not _is_punctuation(c))
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def exact_match(pred: str, ref: str) -> bool:
    return normalise_answer(pred) == normalise_answer(ref)


def token_f1(pred: str, ref: str) -> float:
    """SQuAD token F1 over normalised tokens; two empty answers agree (1.0), one empty: 0.0."""
    pred_tokens = normalise_answer(pred).split()
    ref_tokens = normalise_answer(ref).split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def normalise_label(output: str, labels: Sequence[str]) -> str | None:
    """The label (as spelled in `labels`) the answer names, or None when it names none or several.

    Case-insensitive, in this order: the whole answer is a label once quotes, markdown and
    punctuation around it are stripped (`"Billing."`); the answer starts with a label set apart
    by punctuation or a dash (`billing: the customer was charged twice`), the longest such
    label winning; exactly one label is named anywhere as a whole word (`I would say billing`).
    An answer naming two labels otherwise (`billing or shipping`) names none: it counts as out
    of the label set.
    """
    by_lower: dict[str, str] = {}
    for label in labels:
        by_lower.setdefault(label.lower(), label)
    text = output.strip(_LABEL_WRAPPING).lower()
    if text in by_lower:
        return by_lower[text]
    leading = [lower for lower in by_lower if re.match(re.escape(lower) + _LABEL_THEN, text)]
    if leading:
        return by_lower[max(leading, key=len)]
    named = _named_anywhere(text, by_lower)
    return by_lower[named[0]] if len(named) == 1 else None


def _named_anywhere(text: str, lowered_labels: Iterable[str]) -> list[str]:
    pattern = "(?<!{edge}){label}(?!{edge})"
    found = [
        lower
        for lower in lowered_labels
        if re.search(pattern.format(edge=_WORD_EDGE, label=re.escape(lower)), text)
    ]
    # A label found only inside a longer label that was found ("card" in "card decline") is not
    # named on its own.
    return [f for f in found if not any(f != other and f in other for other in found)]


def _dedupe(doc_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids))


def recall_at_k(
    cited_doc_ids: Sequence[str], expected_doc_ids: Sequence[str], k: int | None = None
) -> float:
    """Share of the expected documents among the first `k` distinct cited ones (all when None)."""
    expected = set(expected_doc_ids)
    if not expected:
        raise ValueError("expected_doc_ids is empty: recall is undefined")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    cited = _dedupe(cited_doc_ids)[:k]
    return len(expected.intersection(cited)) / len(expected)


def reciprocal_rank(
    cited_doc_ids: Sequence[str], expected_doc_ids: Sequence[str], k: int | None = None
) -> float:
    """1 / the rank of the first expected document among the distinct cited ones; 0 if none."""
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    expected = set(expected_doc_ids)
    for rank, doc_id in enumerate(_dedupe(cited_doc_ids)[:k], start=1):
        if doc_id in expected:
            return 1.0 / rank
    return 0.0


def score_case(
    expected: Expected,
    result: CaseResult,
    *,
    labels: Sequence[str],
    min_groundedness: float | None,
) -> CaseScores:
    """The scores `expected` allows for one answer; none for an error (errors are their own rate).

    An answer the gateway withheld (ok, no output) is scored as the empty answer: wrong, out of
    the label set, F1 0. Recall@k takes k as the number of distinct documents the arm cited
    (its retrieval depth). `ungrounded` is set only when the answer carries a groundedness (RAG
    roads) and the feature has a threshold. Judge scores already on the result pass through.
    """
    if not result.ok:
        return CaseScores()
    output = result.output or ""
    predicted = normalise_label(output, labels) if expected.label is not None else None
    answer, doc_ids = expected.answer, expected.doc_ids
    return CaseScores(
        correct=predicted == expected.label if expected.label is not None else None,
        expected_label=expected.label,
        predicted_label=predicted,
        out_of_labels=predicted is None if expected.label is not None else None,
        exact_match=exact_match(output, answer) if answer is not None else None,
        token_f1=token_f1(output, answer) if answer is not None else None,
        recall_at_k=recall_at_k(result.citations, doc_ids) if doc_ids else None,
        reciprocal_rank=reciprocal_rank(result.citations, doc_ids) if doc_ids else None,
        ungrounded=(
            result.groundedness < min_groundedness
            if min_groundedness is not None and result.groundedness is not None
            else None
        ),
        judge_faithfulness=result.scores.judge_faithfulness,
        judge_correctness=result.scores.judge_correctness,
    )
