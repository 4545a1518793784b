"""Retriever hits built in code, for tests of what the gateway does with passages."""

from __future__ import annotations

from trivium.common.contracts.retriever import SearchHit, SearchScores

__all__ = ("hit",)


def hit(text: str, doc_id: str = "d") -> SearchHit:
    return SearchHit(
        chunk_id=f"{doc_id}-0",
        doc_id=doc_id,
        chunk_index=0,
        start=0,
        end=len(text),
        text=text,
        title=doc_id.title(),
        source=f"kb/{doc_id}.md",
        metadata={},
        scores=SearchScores(fused=0.5),
        score=0.5,
    )
