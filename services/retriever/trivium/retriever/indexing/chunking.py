"""Split a document into overlapping chunks on sentence boundaries, keeping character offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ("Chunk", "chunk_text", "sentence_spans")

# A sentence ends at ., ! or ? (optionally closed by a quote or bracket) followed by whitespace,
# or at a blank line; headings and list items end at their line break.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:#|[-*+] |\d+\. ))")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace excluded."""
    spans: list[tuple[int, int]] = []
    position = 0
    for match in _BOUNDARY.finditer(text):
        _append_trimmed(text, position, match.start(), spans)
        position = match.end()
    _append_trimmed(text, position, len(text), spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    if text.startswith("#", start):
        line_end = text.find("\n", start, end)
        if line_end != -1:  # a heading is a sentence of its own
            _append_trimmed(text, start, line_end, spans)
            _append_trimmed(text, line_end, end, spans)
            return
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than max_chars at the last whitespace inside each window."""
    pieces: list[tuple[int, int]] = []
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars + 1)
        if cut <= start:
            cut = start + max_chars
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        pieces.append((start, end))
    return pieces


def chunk_text(text: str, max_chars: int, overlap_chars: int) -> list[Chunk]:
    """Greedily pack whole sentences into chunks of at most `max_chars` characters.

    Each chunk after the first starts with the trailing sentences of the previous one that fit
    in `overlap_chars`, so a passage cut at a chunk edge is still whole in one of the two.
    """
    if overlap_chars >= max_chars:
        raise ValueError("overlap_chars must be smaller than max_chars")
    units = [
        piece
        for start, end in sentence_spans(text)
        for piece in _split_long(text, start, end, max_chars)
    ]
    chunks: list[Chunk] = []
    current: list[tuple[int, int]] = []
    for unit in units:
        if current and unit[1] - current[0][0] > max_chars:
            chunks.append(_make_chunk(text, len(chunks), current))
            current = _overlap_tail(current, overlap_chars, unit, max_chars)
        current.append(unit)
    if current:
        chunks.append(_make_chunk(text, len(chunks), current))
    return chunks


def _overlap_tail(
    units: list[tuple[int, int]], overlap_chars: int, following: tuple[int, int], max_chars: int
) -> list[tuple[int, int]]:
    tail: list[tuple[int, int]] = []
    for unit in reversed(units):
        if units[-1][1] - unit[0] > overlap_chars or following[1] - unit[0] > max_chars:
            break
        tail.insert(0, unit)
    return tail


def _make_chunk(text: str, index: int, units: list[tuple[int, int]]) -> Chunk:
    start, end = units[0][0], units[-1][1]
    return Chunk(index=index, start=start, end=end, text=text[start:end])
