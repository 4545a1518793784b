"""The one small interface every vector store implements; the service sees nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from trivium.retriever.search.filters import FilterSpec

__all__ = (
    "DENSE",
    "SPARSE",
    "ChunkPoint",
    "CollectionInfo",
    "CollectionSpec",
    "QueryResult",
    "RoadsQuery",
    "Scored",
    "SparseVec",
    "VectorStore",
)

DENSE = "dense"
SPARSE = "bm25"
IndexType = Literal["keyword", "integer", "float", "bool"]
BUILTIN_INDEXES: dict[str, IndexType] = {
    "doc_id": "keyword",
    "doc_hash": "keyword",
    "chunk_index": "integer",
    "source": "keyword",
}


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    vector_size: int
    quantization: bool = False
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    payload_indexes: dict[str, IndexType] = field(default_factory=lambda: dict(BUILTIN_INDEXES))


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    points: int
    vector_size: int
    indexed_vectors: int | None


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    id: str
    dense: list[float]
    sparse: SparseVec
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Scored:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RoadsQuery:
    """Nearest neighbours on the dense road, the sparse road, or both in one round trip."""

    limit: int
    dense: list[float] | None = None
    sparse: SparseVec | None = None
    filter: FilterSpec = field(default_factory=FilterSpec)

    def roads(self) -> list[tuple[str, list[float] | SparseVec]]:
        """(vector name, query vector) per road to run; a BM25 query of only unknown or stop
        words has nothing to look for."""
        roads: list[tuple[str, list[float] | SparseVec]] = []
        if self.dense is not None:
            roads.append((DENSE, self.dense))
        if self.sparse is not None and self.sparse.indices:
            roads.append((SPARSE, self.sparse))
        return roads


@dataclass(frozen=True, slots=True)
class QueryResult:
    dense: list[Scored] | None
    sparse: list[Scored] | None

    @classmethod
    def of(cls, query: RoadsQuery, found: dict[str, list[Scored]]) -> QueryResult:
        """A road that was asked for answers a list (empty for a query of only unknown terms)."""
        return cls(
            dense=found.get(DENSE, []) if query.dense is not None else None,
            sparse=found.get(SPARSE, []) if query.sparse is not None else None,
        )


class VectorStore(Protocol):
    backend: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def collections(self) -> list[str]: ...
    async def exists(self, name: str) -> bool: ...
    async def create_collection(self, name: str, spec: CollectionSpec) -> None: ...
    async def drop_collection(self, name: str) -> None: ...
    async def info(self, name: str) -> CollectionInfo: ...
    async def count(self, name: str, where: FilterSpec) -> int: ...
    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None: ...
    async def delete(self, name: str, where: FilterSpec) -> None: ...
    async def scroll(
        self, name: str, where: FilterSpec, limit: int, offset: str | None
    ) -> tuple[list[Scored], str | None]: ...
    async def point_ids(self, name: str, where: FilterSpec) -> list[str]:
        """Every matching point's id, paged through without payloads or vectors."""
        ...

    async def query(self, name: str, query: RoadsQuery) -> QueryResult:
        """Ids and scores per road; payloads are fetched for the survivors only."""
        ...

    async def payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...
