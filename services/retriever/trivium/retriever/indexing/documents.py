"""From an ingested document to the chunk points a store keeps: hashing, ids and payload."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from trivium.common.contracts.retriever import DocumentIn
from trivium.retriever.indexing.chunking import Chunk, chunk_text

__all__ = ("ChunkDraft", "IndexRecipe", "chunk_document", "content_hash", "embedding_text")

_ID_NAMESPACE = uuid.UUID("5b0e3c0e-51f4-4b33-9a4f-7f5e0c7d2a61")


@dataclass(frozen=True, slots=True)
class IndexRecipe:
    """Everything that decides a document's chunks and vectors besides the document itself.

    It is part of the content hash, so changing the chunking or the model re-indexes documents
    on their next ingest instead of calling them unchanged.
    """

    embedding_model: str
    max_chars: int
    overlap_chars: int
    bm25: str

    def fingerprint(self) -> str:
        return json.dumps(
            [self.embedding_model, self.max_chars, self.overlap_chars, self.bm25],
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    id: str
    chunk: Chunk
    payload: dict[str, Any]


def content_hash(document: DocumentIn, recipe: IndexRecipe) -> str:
    canonical = json.dumps(
        [recipe.fingerprint(), document.text, document.title, document.source, document.metadata],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def chunk_document(document: DocumentIn, doc_hash: str, recipe: IndexRecipe) -> list[ChunkDraft]:
    chunks = chunk_text(document.text, recipe.max_chars, recipe.overlap_chars)
    drafts = []
    for chunk in chunks:
        point_id = uuid.uuid5(_ID_NAMESPACE, f"{document.id}\x00{doc_hash}\x00{chunk.index}")
        payload = {
            "doc_id": document.id,
            "doc_hash": doc_hash,
            "chunk_index": chunk.index,
            "chunk_count": len(chunks),
            "start": chunk.start,
            "end": chunk.end,
            "text": chunk.text,
            "chunk_hash": hashlib.sha256(chunk.text.encode()).hexdigest(),
            "title": document.title,
            "source": document.source,
            "metadata": dict(document.metadata),
        }
        drafts.append(ChunkDraft(str(point_id), chunk, payload))
    return drafts


def embedding_text(title: str, text: str) -> str:
    """What the embedders see: the title gives every chunk of a document its topic."""
    return f"{title}\n{text}" if title else text
