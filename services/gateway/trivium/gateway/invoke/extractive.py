"""The extractive road: an answer made of the top passages themselves, with no model.

It survives the model service's death (as a fallback), and it is the verbatim road a
regulated feature may want: every sentence it returns is a cited passage.
"""

from __future__ import annotations

from collections.abc import Sequence

from trivium.gateway.clients.retriever import SearchHit

__all__ = ("NO_PASSAGE", "extractive_answer")

NO_PASSAGE = "No passage in the knowledge base matches this question."
CHARS_PER_TOKEN = 4
"""The road's length budget: the feature's max_tokens at about four characters a token."""


def extractive_answer(hits: Sequence[SearchHit], max_tokens: int) -> str:
    """The passages in rank order, each numbered like its citation ([1], [2], ...), cut to
    the feature's answer length."""
    if not hits:
        return NO_PASSAGE
    budget = max_tokens * CHARS_PER_TOKEN
    lines: list[str] = []
    for index, hit in enumerate(hits, start=1):
        line = f"[{index}] {' '.join(hit.text.split())}"
        if lines and sum(len(text) + 1 for text in lines) + len(line) > budget:
            break
        lines.append(line)
    return "\n".join(lines)[:budget]
