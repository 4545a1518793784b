"""The shipped examples' data: the triage split, the trial datasets, the demo policy's arms."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib import resources
from typing import Any

import msgspec
import pytest

from trivium.cli.demo_data import (
    PUBMEDQA_RERANK_TRAINING,
    encode_jsonl,
    pubmedqa_rerank_training,
    pubmedqa_subset,
    pubmedqa_training_pmids,
    shipped,
    shipped_documents,
    shipped_rows,
    triage_eval_rows,
    triage_example_documents,
)
from trivium.common.contracts.datasets import DatasetRow
from trivium.gateway.policy.check import check_policy
from trivium.gateway.policy.document import ROAD_NEEDS
from trivium.gateway.policy.model import Feature, Road
from trivium.model.data.triage import (
    TRIAGE_LABELS,
    Ticket,
    load_tickets,
    split_tickets,
    training_jsonl,
    triage_prompt,
    triage_split,
)
from trivium.registry import ArtifactVersion, TemplateRenderer
from trivium.registry.templates import parse_template_file
from trivium.retriever.training.questions import decode_questions

TRIAL_ROADS: tuple[Road, ...] = ("prompt", "rag", "finetune")


def test_the_split_is_stratified_disjoint_and_covers_every_ticket() -> None:
    tickets = load_tickets()
    split = triage_split()
    train = {t.text for t in split.train}
    held_out = {t.text for t in split.held_out}
    assert not train & held_out
    assert train | held_out == {t.text for t in tickets}
    assert Counter(t.label for t in split.held_out) == dict.fromkeys(TRIAGE_LABELS, 14)
    assert len(split.train) == 290


def test_the_split_depends_on_the_texts_only() -> None:
    tickets = load_tickets()
    reordered = split_tickets(list(reversed(tickets)))
    assert {t.text for t in reordered.held_out} == {t.text for t in triage_split().held_out}
    # One ticket more moves no other ticket across, beyond its own label's quota.
    extra = Ticket("An entirely new billing question about VAT.", "billing")
    grown = split_tickets([*tickets, extra])
    moved = {t.text for t in grown.held_out} ^ {t.text for t in triage_split().held_out}
    assert len(moved - {extra.text}) <= 1
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_tickets(tickets, 1.0)


def test_training_never_sees_a_held_out_ticket() -> None:
    from trivium.model.demo.base import corpus_lines  # loads torch
    from trivium.model.demo.init import demo_training_set

    held_out = {t.text for t in triage_split().held_out}
    trained = [json.loads(line) for line in demo_training_set().splitlines()]
    assert len(trained) == 290
    assert all(not any(text in record["prompt"] for text in held_out) for record in trained)
    assert not held_out & set(corpus_lines())
    examples = {doc.text.partition("\nLabel: ")[0] for doc in triage_example_documents()}
    assert examples == {t.text for t in triage_split().train}


def test_the_adapter_is_trained_on_the_prompt_the_gateway_renders() -> None:
    """The finetune and prompt roads render `triage` with no passages; the adapter's training
    prompts must be exactly that."""
    text = resources.files("trivium.cli").joinpath("demo_templates/triage.j2").read_text("utf-8")
    body, metadata = parse_template_file(text)
    template = ArtifactVersion(
        "template", "triage", 1, hashlib.sha256(body.encode()).hexdigest(), body, metadata, 0, ""
    )
    renderer = TemplateRenderer()
    ticket = triage_split().train[0]
    assert renderer.render(template, {"ticket": ticket.text, "passages": []}) == triage_prompt(
        ticket.text
    )
    first = json.loads(training_jsonl([ticket]))
    assert first == {"prompt": triage_prompt(ticket.text), "completion": ticket.label}
    few_shot = renderer.render(
        template,
        {"ticket": "My card was declined", "passages": [{"text": "Refund me\nLabel: billing"}]},
    )
    assert "Ticket: Refund me\nLabel: billing\n" in few_shot
    assert few_shot.endswith("Ticket: My card was declined\nLabel:\n")


def test_the_shipped_triage_eval_is_the_held_out_split() -> None:
    assert shipped("triage-eval.jsonl").read_bytes() == encode_jsonl(triage_eval_rows())
    rows = shipped_rows("triage-eval.jsonl")
    assert [row.input for row in rows] == [{"ticket": t.text} for t in triage_split().held_out]
    assert len({row.id for row in rows}) == len(rows) == 70


@pytest.mark.parametrize(
    "parts",
    [("triage-eval.jsonl",), ("pubmedqa", "pubmedqa-eval.jsonl")],
)
def test_the_shipped_datasets_are_dataset_rows(parts: tuple[str, ...]) -> None:
    decoder = msgspec.json.Decoder(DatasetRow)
    lines = shipped(*parts).read_bytes().splitlines()
    rows = [decoder.decode(line) for line in lines]
    assert rows
    assert all(row.input is not None and row.messages is None for row in rows)
    assert len({row.id for row in rows}) == len(rows)
    assert all(row.expected.label is not None for row in rows)


def test_the_pubmedqa_subset_is_consistent_and_licensed() -> None:
    rows = shipped_rows("pubmedqa", "pubmedqa-eval.jsonl")
    documents = shipped_documents("pubmedqa", "documents.jsonl")
    assert len(rows) == 200
    assert Counter(row.expected.label for row in rows) == {"yes": 110, "no": 68, "maybe": 22}
    ids = [doc.id for doc in documents]
    assert len(set(ids)) == len(ids)
    expected = [doc_id for row in rows for doc_id in row.expected.doc_ids or []]
    assert sorted(expected) == sorted(ids)  # every passage belongs to exactly one case
    for row in rows:
        pmid = row.id.removeprefix("pubmedqa-")
        assert all(d.startswith(f"pmid-{pmid}-") for d in row.expected.doc_ids or [])
        assert set(row.input or {}) == {"question"}
    assert "MIT License" in shipped("pubmedqa", "LICENSE").read_text("utf-8")
    assert "ori_pqal.json" in shipped("pubmedqa", "README.md").read_text("utf-8")


def _source(size: int) -> dict[str, dict[str, Any]]:
    labels = ["yes"] * (size // 2) + ["no"] * (size // 4) + ["maybe"] * (size - size * 3 // 4)
    return {
        str(1000 + i): {
            "QUESTION": f"Question {i}?",
            "CONTEXTS": [f"Background {i}.", f"Results {i}."],
            "LABELS": ["BACKGROUND", "RESULTS"],
            "final_decision": label,
        }
        for i, label in enumerate(labels)
    }


def test_the_pubmedqa_selection_is_stratified_deterministic_and_leaves_the_rest() -> None:
    source = _source(40)
    rows, documents = pubmedqa_subset(source, size=8)
    assert Counter(row.expected.label for row in rows) == {"yes": 4, "no": 2, "maybe": 2}
    assert pubmedqa_subset(dict(reversed(source.items())), size=8) == (rows, documents)
    first = rows[0]
    pmid = first.id.removeprefix("pubmedqa-")
    assert first.expected.doc_ids == [f"pmid-{pmid}-1", f"pmid-{pmid}-2"]
    assert documents[0].title == "Background"
    assert documents[0].metadata["pmid"] == pmid
    rest = pubmedqa_training_pmids(source, size=8)
    assert len(rest) == 32
    assert not {f"pubmedqa-{p}" for p in rest} & {row.id for row in rows}
    training = pubmedqa_rerank_training(source, size=8)
    assert [q.id for q in training] == [f"pubmedqa-{p}" for p in rest]
    assert [p.title for p in training[0].passages] == ["Background", "Results"]


def test_the_rerankers_training_file_holds_only_questions_outside_the_eval_set() -> None:
    rows = shipped_rows("pubmedqa", "pubmedqa-eval.jsonl")
    training = decode_questions(shipped(*PUBMEDQA_RERANK_TRAINING).read_bytes())
    assert len(training) == 800
    assert not {q.id for q in training} & {row.id for row in rows}
    evaluated = {doc.text for doc in shipped_documents("pubmedqa", "documents.jsonl")}
    shared = {p.text for q in training for p in q.passages} & evaluated
    assert shared == {"Case series.", "Cross-sectional.", "Randomized controlled trial."}
    assert len(shipped(*PUBMEDQA_RERANK_TRAINING).read_bytes()) < 2_000_000


def _demo_policy() -> Any:
    text = resources.files("trivium.cli").joinpath("demo_policy.yaml").read_text("utf-8")
    return check_policy(text.format(model_url="http://127.0.0.1:9"), "demo").policy


def _trial_arms(feature: Feature) -> list[str]:
    """The default arms of a trial: each of the three roads whose needs the entry names,
    then the declared variants."""
    named: dict[str, object] = {
        "template": feature.template,
        "adapter": feature.adapter,
        "retrieval": feature.retrieval,
    }
    roads = [r for r in TRIAL_ROADS if all(named[need] is not None for need in ROAD_NEEDS[r])]
    return [*roads, *feature.variants]


def test_the_demo_policy_gives_each_example_its_arms() -> None:
    policy = _demo_policy()
    triage = policy.features["ticket-triage"]
    assert _trial_arms(triage) == ["prompt", "rag", "finetune"]
    assert triage.route == "finetune"
    assert triage.fallback == ("prompt",)
    rag = triage.arm("ticket-triage").retrieval
    assert rag is not None
    assert rag.collection == "triage-examples"
    assert triage.template == "triage@production"

    pubmed = policy.features["pubmed-qa"]
    modes = {
        name: pubmed.arm("pubmed-qa", name).retrieval
        for name in ("hybrid", "dense", "sparse", "hybrid-rerank")
    }
    assert {name: (r.mode, r.rerank) for name, r in modes.items() if r} == {
        "hybrid": ("hybrid", False),
        "dense": ("dense", False),
        "sparse": ("sparse", False),
        "hybrid-rerank": ("hybrid", True),
    }
    assert all(r is not None and r.collection == "pubmedqa" for r in modes.values())
    assert pubmed.route == "rag"
    assert pubmed.fallback == ("extractive",)
