"""The shipped triage tickets, split once and for all into a training set and a held-out set.

The split is a pure function of the ticket texts (no random state): within each label, the
tickets are ordered by the sha256 of a salted text and the first `HELD_OUT_FRACTION` of them
are held out. The demo base model is pre-trained without the held-out tickets, the adapter is
fine-tuned on the training tickets only, and the held-out tickets are the `triage-eval`
dataset a trial measures every road on. Imports nothing heavy (no torch): the CLI reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = (
    "HELD_OUT_FRACTION",
    "TRIAGE_LABELS",
    "Ticket",
    "TriageSplit",
    "load_tickets",
    "split_tickets",
    "training_jsonl",
    "triage_prompt",
    "triage_split",
)

DATA_PACKAGE = "trivium.model.data"
TRIAGE_FILE = "triage.jsonl"
TRIAGE_LABELS = ("billing", "bug", "account", "feature_request", "other")
HELD_OUT_FRACTION = 0.2
SPLIT_SALT = "trivium-triage-split-v1"


@dataclass(frozen=True, slots=True)
class Ticket:
    text: str
    label: str

    @property
    def id(self) -> str:
        """A stable id from the text alone: `ticket-` and 12 hex digits of its sha256."""
        return "ticket-" + hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]

    @property
    def split_key(self) -> str:
        return hashlib.sha256(f"{SPLIT_SALT}\n{self.text}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TriageSplit:
    train: tuple[Ticket, ...]
    held_out: tuple[Ticket, ...]


def load_tickets() -> list[Ticket]:
    """The shipped tickets (`{"prompt": ticket, "completion": label}` per line), in file order."""
    text = resources.files(DATA_PACKAGE).joinpath(TRIAGE_FILE).read_text(encoding="utf-8")
    tickets = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            tickets.append(Ticket(text=record["prompt"], label=record["completion"]))
    return tickets


def split_tickets(tickets: Sequence[Ticket], fraction: float = HELD_OUT_FRACTION) -> TriageSplit:
    """Stratified and deterministic: per label, round(n * fraction) tickets by split key are
    held out; both sides keep file order. The same text always lands on the same side."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    held: set[str] = set()
    for label in sorted({ticket.label for ticket in tickets}):
        texts = sorted({t.text for t in tickets if t.label == label}, key=_split_key)
        held.update(texts[: round(len(texts) * fraction)])
    return TriageSplit(
        train=tuple(t for t in tickets if t.text not in held),
        held_out=tuple(t for t in tickets if t.text in held),
    )


def _split_key(text: str) -> str:
    return Ticket(text, "").split_key


@cache
def triage_split() -> TriageSplit:
    """The split of the shipped tickets."""
    return split_tickets(load_tickets())


def triage_prompt(ticket: str) -> str:
    """The demo template `triage` (trivium/cli/demo_templates/triage.j2) rendered with no
    retrieved examples: what the gateway sends on the prompt and finetune roads, so the
    adapter is trained on exactly that. A test keeps the two equal."""
    labels = ", ".join(TRIAGE_LABELS)
    return (
        f"Classify the support ticket into exactly one of: {labels}.\n"
        "Reply with the label only.\n"
        "\n"
        f"Ticket: {ticket}\n"
        "Label:\n"
    )


def training_jsonl(tickets: Sequence[Ticket]) -> bytes:
    """The fine-tuning file for `tickets`: the served prompt and the label, one JSON a line."""
    lines = (
        json.dumps({"prompt": triage_prompt(t.text), "completion": t.label}, ensure_ascii=False)
        for t in tickets
    )
    return ("\n".join(lines) + "\n").encode("utf-8")
