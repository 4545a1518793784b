"""CISI (1,460 abstracts, 112 queries, 76 judged) from the shared data directory, in BEIR form."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict

from tests.support.paths import SHARED_DATA

CISI = SHARED_DATA / "cisi" / "beir"


def cisi_available() -> bool:
    return (CISI / "corpus.jsonl").is_file()


def corpus() -> dict[str, str]:
    with (CISI / "corpus.jsonl").open() as lines:
        rows = [json.loads(line) for line in lines]
    return {row["_id"]: f"{row.get('title', '')}\n{row['text']}" for row in rows}


def queries() -> dict[str, str]:
    with (CISI / "queries.jsonl").open() as lines:
        return {row["_id"]: row["text"] for row in map(json.loads, lines)}


def judged_query_ids() -> list[str]:
    with (CISI / "qrels" / "test.tsv").open() as lines:
        next(lines)
        return sorted({line.split("\t")[0] for line in lines if int(line.split("\t")[2]) > 0})


class LexicalIndex:
    """Documents ranked by the idf-weighted query terms they share: a cheap candidate list of
    the kind the first stage hands the re-ranker."""

    def __init__(self, docs: dict[str, str]) -> None:
        self._postings: dict[str, list[str]] = defaultdict(list)
        for doc_id, text in docs.items():
            for term in set(_terms(text)):
                self._postings[term].append(doc_id)
        self._docs = len(docs)

    def top(self, query: str, k: int) -> list[str]:
        scores: dict[str, float] = defaultdict(float)
        for term in set(_terms(query)):
            postings = self._postings.get(term, [])
            for doc_id in postings:
                scores[doc_id] += math.log(self._docs / len(postings))
        return sorted(scores, key=lambda d: (-scores[d], d))[:k]


def _terms(text: str) -> list[str]:
    return re.findall(r"[a-z]{3,}", text.lower())
