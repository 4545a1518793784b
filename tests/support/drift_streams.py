"""Query streams for the drift tests and benchmark: a CISI collection (library and
information science abstracts), on-topic queries (titles of CISI documents NOT indexed) and
off-topic ones (PubMedQA's clinical questions)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.support.paths import SHARED_DATA
from trivium.common.contracts.retriever import DocumentIn

REPO = Path(__file__).resolve().parents[2]
CISI_CORPUS = SHARED_DATA / "cisi" / "beir" / "corpus.jsonl"
PUBMEDQA = REPO / "services/cli/trivium/cli/demo_datasets/pubmedqa/pubmedqa-eval.jsonl"


def cisi_rows() -> list[dict[str, str]]:
    if not CISI_CORPUS.is_file():
        raise FileNotFoundError(
            f"CISI is not at {CISI_CORPUS}: the team's shared data belongs beside the checkout "
            "(../shared/data), or set TRIVIUM_SHARED_DATA to where it is"
        )
    with CISI_CORPUS.open() as lines:
        return [json.loads(line) for line in lines]


def cisi_documents(count: int) -> list[DocumentIn]:
    """The first `count` CISI documents (the indexed ones)."""
    return [
        DocumentIn(id=row["_id"], text=row["text"], title=row.get("title", ""))
        for row in cisi_rows()[:count]
    ]


def on_topic_queries(skip: int) -> list[str]:
    """Titles of the CISI documents after the first `skip` (never indexed), shuffled with a
    fixed seed: the file runs through sub-topics in order, which is itself a drift."""
    titles = [row["title"] for row in cisi_rows()[skip:] if row.get("title", "").strip()]
    random.Random(16).shuffle(titles)
    return titles


def off_topic_queries() -> list[str]:
    with PUBMEDQA.open() as lines:
        return [json.loads(line)["input"]["question"] for line in lines]
