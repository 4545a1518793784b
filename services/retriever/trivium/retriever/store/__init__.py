"""Vector stores: Qdrant's engine in process (`edge`) and a Qdrant server (`qdrant`)."""

from trivium.retriever.store.base import (
    ChunkPoint,
    CollectionInfo,
    CollectionSpec,
    QueryResult,
    RoadsQuery,
    Scored,
    SparseVec,
    VectorStore,
)

__all__ = (
    "ChunkPoint",
    "CollectionInfo",
    "CollectionSpec",
    "QueryResult",
    "RoadsQuery",
    "Scored",
    "SparseVec",
    "VectorStore",
)
