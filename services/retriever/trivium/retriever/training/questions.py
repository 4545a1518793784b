"""The training data of a re-ranker: questions, each with the passages that answer it."""

from __future__ import annotations

import msgspec

__all__ = ("TrainingPassage", "TrainingQuestion", "decode_questions", "passage_text")


class TrainingPassage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: str
    text: str


class TrainingQuestion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One question and its own passages (the relevant ones); every other question's
    passages are candidates for its negatives."""

    id: str
    question: str
    passages: list[TrainingPassage]


def passage_text(passage: TrainingPassage) -> str:
    """The passage as the re-ranker sees it at search time (`indexing.documents.embedding_text`):
    the title, a newline, the text."""
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


def decode_questions(data: bytes) -> list[TrainingQuestion]:
    """JSONL, one `TrainingQuestion` a line."""
    decoder = msgspec.json.Decoder(TrainingQuestion)
    return [decoder.decode(line) for line in data.splitlines() if line.strip()]
