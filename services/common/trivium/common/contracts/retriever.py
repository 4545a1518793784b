"""The retriever API on the wire: what the retriever serves and its callers (gateway, CLI) send."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = (
    "COLLECTION_NAME_PATTERN",
    "MAX_CACHE_ENTRIES",
    "MAX_CACHE_TTL_S",
    "MAX_RERANK_TOP",
    "METADATA_KEY_PATTERN",
    "NAMESPACE_PATTERN",
    "NON_BLANK_PATTERN",
    "POINT_ID_PATTERN",
    "SCOPE_PATTERN",
    "CacheHit",
    "CacheLookup",
    "CacheLookupResult",
    "CacheNamespaceStats",
    "CacheStore",
    "CacheStoreResult",
    "CollectionCreate",
    "CollectionStats",
    "DeleteResult",
    "DocumentIn",
    "DocumentPage",
    "DocumentSummary",
    "FusionWeights",
    "IndexRef",
    "IngestRequest",
    "IngestResult",
    "Quantization",
    "SearchHit",
    "SearchMode",
    "SearchRequest",
    "SearchResponse",
    "SearchScores",
)

COLLECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
METADATA_KEY_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
POINT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""A chunk's point id (a UUID); `DocumentPage.next_offset` is one."""
MAX_RERANK_TOP = 500
CollectionName = Annotated[str, msgspec.Meta(pattern=COLLECTION_NAME_PATTERN)]
DocumentId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_SPACES = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NON_BLANK_PATTERN = f"[^{_SPACES}]"
"""Holds a character that is not white space, for Python's `str.isspace` and for JSON Schema's
(ECMA-262) `\\s` alike: the two disagree on some characters, so `\\S` would not do."""
NonBlank = Annotated[
    str, msgspec.Meta(pattern=NON_BLANK_PATTERN, description="not empty nor only white space")
]
SearchMode = Literal["dense", "sparse", "hybrid"]
Quantization = Literal["none", "int8"]
MetadataValue = str | int | float | bool | list[str | int] | None


class CollectionCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: CollectionName
    quantization: Quantization | None = None
    """Scalar quantization of the dense vectors; unset: the service's default."""


class CollectionStats(msgspec.Struct):
    name: str
    backend: str
    points: int
    documents: int
    vector_size: int
    embedding_model: str
    index_version: str
    """What is indexed and how (recipe hash - content digest): equal content, equal version."""
    indexed_vectors: int | None = None


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True):
    id: DocumentId
    text: NonBlank
    title: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    source: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    """Where the document came from (a URI or path), returned with every hit."""
    metadata: dict[Annotated[str, msgspec.Meta(pattern=METADATA_KEY_PATTERN)], MetadataValue] = {}


class IngestRequest(msgspec.Struct, forbid_unknown_fields=True):
    documents: Annotated[list[DocumentIn], msgspec.Meta(min_length=1)]
    """Upserted in order: of two documents with one id, the later is the one kept."""


class IngestResult(msgspec.Struct):
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    chunks_written: int
    chunks_deleted: int


class DocumentSummary(msgspec.Struct):
    id: str
    content_hash: str
    title: str
    source: str
    chunks: int


class DocumentPage(msgspec.Struct):
    documents: list[DocumentSummary]
    next_offset: str | None


class DeleteResult(msgspec.Struct):
    id: str
    chunks_deleted: int


Weight = Annotated[float, msgspec.Meta(gt=0, le=100)]


class FusionWeights(msgspec.Struct, forbid_unknown_fields=True):
    dense: Weight = 1.0
    sparse: Weight = 1.0


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    query: NonBlank
    k: Annotated[int, msgspec.Meta(ge=1)] = 10
    """At most the service's `search.max_k` (its schema states it)."""
    mode: SearchMode = "hybrid"
    filter: dict[str, Any] | None = None
    """`{must|should|must_not: [{key, match|any|range}]}`; the schema states the grammar."""
    rerank: bool = False
    rerank_top: Annotated[int, msgspec.Meta(ge=1, le=MAX_RERANK_TOP)] | None = None
    """How many fused candidates the cross-encoder re-scores (never fewer than `k`); unset:
    the service's default."""
    weights: FusionWeights | None = None
    """Hybrid fusion weights for this search; unset: the service's defaults."""


class SearchScores(msgspec.Struct, omit_defaults=True):
    dense: float | None = None
    sparse: float | None = None
    fused: float | None = None
    rerank: float | None = None


class SearchHit(msgspec.Struct):
    chunk_id: str
    doc_id: str
    chunk_index: int
    start: int
    end: int
    text: str
    title: str
    source: str
    metadata: dict[str, Any]
    scores: SearchScores
    score: float
    """The score the hits are ordered by (rerank, else fused, else the single road's)."""


class SearchResponse(msgspec.Struct):
    collection: str
    index_version: str
    """The collection's index version when the search ran (see `CollectionStats`)."""
    mode: SearchMode
    reranked: bool
    hits: list[SearchHit]
    timings_ms: dict[str, float]


# -- the semantic cache (`/v1/cache/{namespace}/...`) ---------------------------------------

NAMESPACE_PATTERN = COLLECTION_NAME_PATTERN
SCOPE_PATTERN = r"^[0-9a-f]{16,64}$"
"""A hash of everything that must match exactly (the caller computes it)."""
MAX_CACHE_TTL_S = 30 * 24 * 3600
MAX_CACHE_ENTRIES = 1_000_000
Scope = Annotated[str, msgspec.Meta(pattern=SCOPE_PATTERN)]
Similarity = Annotated[float, msgspec.Meta(ge=0, le=1)]
ScopedCollection = Annotated[
    str, msgspec.Meta(pattern=COLLECTION_NAME_PATTERN, description="a RAG road's collection")
]


class CacheLookup(msgspec.Struct, forbid_unknown_fields=True):
    """The nearest live entry of `scope` whose text is at least `threshold` similar (cosine)."""

    scope: Scope
    text: NonBlank
    threshold: Similarity
    collection: ScopedCollection | None = None
    """A RAG road's collection: only entries stored under its current index version match."""


class IndexRef(msgspec.Struct, forbid_unknown_fields=True):
    """The index a RAG answer was built on."""

    collection: ScopedCollection
    index_version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CacheStore(msgspec.Struct, forbid_unknown_fields=True):
    scope: Scope
    text: NonBlank
    answer: Annotated[str, msgspec.Meta(min_length=1, max_length=262_144)]
    """Opaque to the retriever (the gateway stores its answer's JSON)."""
    origin_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """The id of the request whose answer this is; a hit names it."""
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=MAX_CACHE_TTL_S)]
    max_entries: Annotated[int, msgspec.Meta(ge=1, le=MAX_CACHE_ENTRIES)]
    """The namespace's size bound: beyond it, expired then oldest entries are evicted."""
    built_on: IndexRef | None = None
    """A RAG answer's collection and index version: an answer built on an index that is no
    longer current is not stored; lookups naming the collection find it while it is current."""


class CacheHit(msgspec.Struct):
    similarity: float
    answer: str
    origin_id: str
    text: str
    """The stored entry's text (what the original request asked)."""
    stored_at: float
    """Unix seconds."""


class CacheLookupResult(msgspec.Struct):
    namespace: str
    hit: CacheHit | None
    timings_ms: dict[str, float]


class CacheStoreResult(msgspec.Struct):
    namespace: str
    stored: bool
    """False: the answer's index version is no longer current (nothing written)."""
    entries: int
    evicted: int


class CacheNamespaceStats(msgspec.Struct):
    namespace: str
    entries: int
    live: int
