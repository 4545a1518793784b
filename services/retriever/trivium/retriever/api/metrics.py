"""The retriever's Prometheus series; every label has a small, fixed set of values."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ("CACHE_REQUESTS", "CHUNKS", "DOCUMENTS", "QUERY_BATCH", "SEARCHES", "STAGE_SECONDS")

STAGE_SECONDS = Histogram(
    "trivium_retriever_stage_duration_seconds",
    "Time per retrieval stage.",
    ["stage"],  # embed, search, rerank, ingest_embed, ingest_write
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SEARCHES = Counter("trivium_retriever_searches_total", "Searches served.", ["mode", "reranked"])
DOCUMENTS = Counter(
    "trivium_retriever_documents_total",
    "Documents seen by ingest and delete.",
    ["result"],  # added, updated, unchanged, deleted
)
CHUNKS = Counter("trivium_retriever_chunks_total", "Chunks written or deleted.", ["op"])
QUERY_BATCH = Histogram(
    "trivium_retriever_query_batch_size",
    "Search queries embedded together in one model call.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
CACHE_REQUESTS = Counter(
    "trivium_retriever_cache_requests_total",
    "Semantic cache calls.",
    ["op", "result"],  # lookup: hit, miss; store: stored, stale; evict: expired, oldest
)
