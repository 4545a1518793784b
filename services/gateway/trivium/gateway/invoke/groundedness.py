"""How much of an answer its passages support. Pluggable: a scorer is any `Groundedness`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

__all__ = ("SCORERS", "Groundedness", "TokenOverlap")

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CITATION = re.compile(r"\[\d+\]")
_STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be
    been being it its this that these those there here i you he she we they me him her us them
    my your his our their what which who whom whose when where why how not no yes do does did
    so than too very can could should would will shall may might must have has had""".split()  # noqa: SIM905
)


class Groundedness(Protocol):
    name: str

    def score(self, answer: str, passages: Sequence[str]) -> float | None:
        """In [0, 1]; None when the answer has nothing to judge (e.g. empty)."""
        ...


def _content_words(text: str) -> list[str]:
    words = _WORD.findall(_CITATION.sub(" ", text).lower())
    return [word for word in words if word not in _STOPWORDS]


class TokenOverlap:
    """Precision of the answer's content words against the passages' words: the share of
    what the answer says that appears somewhere in what it was given."""

    name = "token-overlap"

    def score(self, answer: str, passages: Sequence[str]) -> float | None:
        said = _content_words(answer)
        if not said:
            return None
        given = {word for passage in passages for word in _content_words(passage)}
        return sum(word in given for word in said) / len(said)


SCORERS: dict[str, Groundedness] = {TokenOverlap.name: TokenOverlap()}
