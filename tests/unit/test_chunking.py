"""Chunking on sentence boundaries with exact character offsets."""

from __future__ import annotations

import itertools

import pytest

from trivium.retriever.indexing.chunking import chunk_text, sentence_spans

TEXT = (
    "Refunds take five days. Invoices list every charge! Do you need help?\n\n"
    "# Passwords\nReset links expire after an hour. Codes arrive by SMS."
)


def test_sentences_are_found_with_offsets() -> None:
    sentences = [TEXT[start:end] for start, end in sentence_spans(TEXT)]
    assert sentences == [
        "Refunds take five days.",
        "Invoices list every charge!",
        "Do you need help?",
        "# Passwords",
        "Reset links expire after an hour.",
        "Codes arrive by SMS.",
    ]


@pytest.mark.parametrize(("max_chars", "overlap"), [(40, 0), (60, 25), (80, 40), (1000, 100)])
def test_chunks_respect_size_keep_offsets_and_cover_the_text(max_chars: int, overlap: int) -> None:
    chunks = chunk_text(TEXT, max_chars, overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert len(chunk.text) <= max_chars
        assert TEXT[chunk.start : chunk.end] == chunk.text
    for start, end in sentence_spans(TEXT):
        assert any(c.start <= start and end <= c.end for c in chunks), TEXT[start:end]


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    chunks = chunk_text(TEXT, 60, 30)
    assert len(chunks) > 2
    for previous, following in itertools.pairwise(chunks):
        assert previous.start < following.start
        assert following.start >= previous.end - 30
    overlapping = [(a, b) for a, b in itertools.pairwise(chunks) if b.start < a.end]
    assert overlapping, "no chunk shares a sentence with its predecessor"


def test_without_overlap_chunks_do_not_share_text() -> None:
    chunks = chunk_text(TEXT, 60, 0)
    for previous, following in itertools.pairwise(chunks):
        assert following.start >= previous.end


def test_a_sentence_longer_than_a_chunk_is_cut_at_whitespace() -> None:
    text = "word " * 100
    chunks = chunk_text(text, 50, 10)
    assert all(len(c.text) <= 50 for c in chunks)
    assert all(not c.text.startswith(" ") and not c.text.endswith(" ") for c in chunks)
    assert sum(c.text.count("word") for c in chunks) >= 100


def test_empty_text_has_no_chunks_and_bad_overlap_is_refused() -> None:
    assert chunk_text("  \n ", 100, 10) == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_text(TEXT, 100, 100)
