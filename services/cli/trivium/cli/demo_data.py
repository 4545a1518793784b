"""The shipped examples' data: trial datasets and the documents their collections hold.

- `triage-eval` (dataset): the held-out triage tickets (`trivium.model.data.triage`), never
  trained on; `triage-examples` (collection): the training tickets with their labels, which
  the `ticket-triage` feature's rag road retrieves as few-shot examples.
- `pubmedqa-eval` (dataset) and `pubmedqa` (collection): a fixed subset of PubMedQA's
  expert-labelled questions (MIT; `demo_datasets/pubmedqa/README.md`), each question's
  contexts one document apiece.
- `pubmedqa/rerank-train.jsonl`: the OTHER questions with their contexts, which the demo
  re-ranker is fine-tuned on (`trivium demo build-reranker`); never an evaluated question.

The shipped files under `demo_datasets/` are this module's output
(`scripts/make_demo_datasets.py` writes them; a test keeps them equal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import msgspec

from trivium.common.contracts.datasets import DatasetRow, Expected
from trivium.common.contracts.retriever import DocumentIn
from trivium.model.data.triage import Ticket, triage_split
from trivium.retriever.training.questions import TrainingPassage, TrainingQuestion

__all__ = (
    "PUBMEDQA_COLLECTION",
    "PUBMEDQA_DATASET",
    "PUBMEDQA_RERANK_TRAINING",
    "PUBMEDQA_SIZE",
    "TRIAGE_DATASET",
    "TRIAGE_EXAMPLES_COLLECTION",
    "encode_jsonl",
    "pubmedqa_rerank_training",
    "pubmedqa_subset",
    "shipped",
    "shipped_documents",
    "shipped_rows",
    "triage_eval_rows",
    "triage_example_documents",
)

TRIAGE_DATASET = "triage-eval"
TRIAGE_EXAMPLES_COLLECTION = "triage-examples"
PUBMEDQA_DATASET = "pubmedqa-eval"
PUBMEDQA_COLLECTION = "pubmedqa"
PUBMEDQA_SIZE = 200
PUBMEDQA_RERANK_TRAINING = ("pubmedqa", "rerank-train.jsonl")
PUBMEDQA_SALT = "trivium-pubmedqa-subset-v1"
PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"

T = TypeVar("T")


def triage_eval_rows() -> list[DatasetRow]:
    """The held-out tickets as dataset rows: `input.ticket`, `expected.label`."""
    return [
        DatasetRow(id=t.id, input={"ticket": t.text}, expected=Expected(label=t.label))
        for t in triage_split().held_out
    ]


def triage_example_text(ticket: Ticket) -> str:
    """A solved ticket as the few-shot template lists it after `Ticket: `."""
    return f"{ticket.text}\nLabel: {ticket.label}"


def triage_example_documents() -> list[DocumentIn]:
    """The training tickets, each with its label in the text (the prompt shows it) and in
    the metadata (filters)."""
    return [
        DocumentIn(
            id=t.id,
            text=triage_example_text(t),
            title=t.label,
            source=f"trivium.model.data/triage.jsonl#{t.id}",
            metadata={"label": t.label},
        )
        for t in triage_split().train
    ]


def pubmedqa_subset(
    source: Mapping[str, Mapping[str, Any]], size: int = PUBMEDQA_SIZE
) -> tuple[list[DatasetRow], list[DocumentIn]]:
    """`size` questions of PubMedQA's `ori_pqal.json`, stratified by `final_decision` and
    chosen by the sha256 of a salted PMID (no random state), in PMID order; and every chosen
    question's contexts as documents `pmid-<pmid>-<n>` (n from 1), titled by their section."""
    by_label: dict[str, list[str]] = {}
    for pmid, record in source.items():
        by_label.setdefault(str(record["final_decision"]), []).append(pmid)
    chosen: list[str] = []
    for label in sorted(by_label):
        pmids = sorted(by_label[label], key=_pmid_key)
        chosen += pmids[: round(len(pmids) * size / len(source))]
    rows: list[DatasetRow] = []
    documents: list[DocumentIn] = []
    for pmid in sorted(chosen, key=int):
        record = source[pmid]
        doc_ids = []
        for n, (context, section) in enumerate(
            zip(record["CONTEXTS"], record["LABELS"], strict=True), start=1
        ):
            doc_id = f"pmid-{pmid}-{n}"
            doc_ids.append(doc_id)
            documents.append(
                DocumentIn(
                    id=doc_id,
                    text=context,
                    title=str(section).capitalize(),
                    source=PUBMED_URL.format(pmid=pmid),
                    metadata={"pmid": pmid, "section": str(section)},
                )
            )
        rows.append(
            DatasetRow(
                id=f"pubmedqa-{pmid}",
                input={"question": record["QUESTION"]},
                expected=Expected(label=str(record["final_decision"]), doc_ids=doc_ids),
            )
        )
    return rows, documents


def pubmedqa_training_pmids(source: Mapping[str, Any], size: int = PUBMEDQA_SIZE) -> list[str]:
    """The questions outside the shipped subset (free for tuning anything, e.g. a re-ranker)."""
    rows, _ = pubmedqa_subset(source, size)
    shipped_ids = {row.id.removeprefix("pubmedqa-") for row in rows}
    return sorted((pmid for pmid in source if pmid not in shipped_ids), key=int)


def pubmedqa_rerank_training(
    source: Mapping[str, Mapping[str, Any]], size: int = PUBMEDQA_SIZE
) -> list[TrainingQuestion]:
    """The questions outside the shipped subset, in PMID order, each with its contexts titled
    by section as the collection's documents are: the re-ranker's training data."""
    return [
        TrainingQuestion(
            id=f"pubmedqa-{pmid}",
            question=str(source[pmid]["QUESTION"]),
            passages=[
                TrainingPassage(title=str(section).capitalize(), text=str(context))
                for context, section in zip(
                    source[pmid]["CONTEXTS"], source[pmid]["LABELS"], strict=True
                )
            ],
        )
        for pmid in pubmedqa_training_pmids(source, size)
    ]


def _pmid_key(pmid: str) -> str:
    return hashlib.sha256(f"{PUBMEDQA_SALT}\n{pmid}".encode()).hexdigest()


def encode_jsonl(items: Iterable[msgspec.Struct]) -> bytes:
    """One compact JSON object a line (defaults omitted where the struct says so)."""
    return b"".join(msgspec.json.encode(item) + b"\n" for item in items)


def shipped(*parts: str) -> Traversable:
    """A file under `trivium/cli/demo_datasets/`."""
    return resources.files("trivium.cli").joinpath("demo_datasets", *parts)


def shipped_rows(*parts: str) -> list[DatasetRow]:
    return _decode_lines(shipped(*parts).read_bytes(), DatasetRow)


def shipped_documents(*parts: str) -> list[DocumentIn]:
    return _decode_lines(shipped(*parts).read_bytes(), DocumentIn)


def _decode_lines(data: bytes, kind: type[T]) -> list[T]:
    decoder = msgspec.json.Decoder(kind)
    return [decoder.decode(line) for line in data.splitlines() if line.strip()]


def shipped_files() -> Sequence[tuple[str, ...]]:
    """Every generated file under demo_datasets/, as path parts."""
    return (
        ("triage-eval.jsonl",),
        ("pubmedqa", "pubmedqa-eval.jsonl"),
        ("pubmedqa", "documents.jsonl"),
        PUBMEDQA_RERANK_TRAINING,
    )
