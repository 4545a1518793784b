"""Hard negatives by BM25: for each question, the other questions' passages it matches best.

Pure Python and deterministic (ties break by passage order): a few seconds for a thousand
questions. A hard negative shares the question's words without answering it, which is what a
re-ranker must learn to tell apart from the passages that do.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from trivium.retriever.training.questions import TrainingQuestion, passage_text

__all__ = ("PassageRef", "hard_negatives")

PassageRef = tuple[int, int]
"""(question index, passage index within that question)."""

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "which",
        "who",
        "whether",
        "with",
    ]
)


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def hard_negatives(
    questions: Sequence[TrainingQuestion], per_question: int, *, k1: float = 0.9, b: float = 0.4
) -> list[list[PassageRef]]:
    """The `per_question` best BM25 matches of each question among the passages of the OTHER
    questions, best first."""
    refs: list[PassageRef] = []
    lengths: list[int] = []
    postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for qi, question in enumerate(questions):
        for pi, passage in enumerate(question.passages):
            terms = _terms(passage_text(passage))
            for term, count in Counter(terms).items():
                postings[term].append((len(refs), count))
            refs.append((qi, pi))
            lengths.append(len(terms))
    total = len(refs)
    average = sum(lengths) / total if total else 1.0
    norms = [k1 * (1 - b + b * length / average) for length in lengths]
    idf = {
        term: math.log(1 + (total - len(hits) + 0.5) / (len(hits) + 0.5))
        for term, hits in postings.items()
    }
    chosen: list[list[PassageRef]] = []
    for qi, question in enumerate(questions):
        scores: dict[int, float] = defaultdict(float)
        for term in set(_terms(question.question)):
            weight = idf.get(term, 0.0)
            for doc, count in postings.get(term, ()):
                scores[doc] += weight * count * (k1 + 1) / (count + norms[doc])
        ranked = sorted(
            (doc for doc in scores if refs[doc][0] != qi), key=lambda doc: (-scores[doc], doc)
        )
        chosen.append([refs[doc] for doc in ranked[:per_question]])
    return chosen
