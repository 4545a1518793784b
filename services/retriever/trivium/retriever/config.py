"""The retriever's process settings (`retriever:` in the file, `TRIVIUM_RETRIEVER__*` in env)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from trivium.common.settings import Section, TriviumSettings

__all__ = (
    "ChunkingSection",
    "EmbeddingSection",
    "QueryDriftSection",
    "RerankSection",
    "RetrieverSection",
    "RetrieverSettings",
    "SearchSection",
    "StoreSection",
)


InferenceBackend = Literal["torch", "onnx"]
OnnxVariant = Literal["fp32", "int8"]


class StoreSection(Section):
    """Where vectors live: Qdrant's engine in process (default) or a Qdrant server."""

    backend: Literal["edge", "qdrant"] = "edge"
    url: str | None = Field(
        default=None,
        description="Qdrant server URL, or ':memory:' / a path for qdrant-client's local mode",
    )
    api_key: SecretStr | None = None
    prefer_grpc: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    quantization: Literal["none", "int8"] = Field(
        default="none", description="scalar quantization of new collections' dense vectors"
    )
    hnsw_m: int = Field(default=16, ge=4, le=128)
    hnsw_ef_construct: int = Field(default=100, ge=8, le=1000)
    optimize_after_s: float = Field(
        default=2.0, ge=0, description="edge: build indexes this long after the last write"
    )
    filter_fields: dict[str, Literal["keyword", "integer", "float", "bool"]] = Field(
        default_factory=dict,
        description="payload indexes created with each collection, e.g. metadata.lang: keyword",
    )
    index_version_max_age_s: float = Field(
        default=0,
        ge=0,
        description="recount a collection's index version when older than this (0: never); "
        "set it when other replicas write to the same Qdrant server",
    )

    @model_validator(mode="after")
    def _server_needs_url(self) -> StoreSection:
        if self.backend == "qdrant" and not self.url:
            raise ValueError("store.url is required when store.backend is 'qdrant'")
        return self


class EmbeddingSection(Section):
    model_dir: Path | None = Field(
        default=None,
        description="sentence-transformers directory; unset: all-MiniLM-L6-v2 from its wheel",
    )
    batch_size: int = Field(default=32, ge=1, le=1024)
    max_batch_tokens: int = Field(
        default=2048,
        ge=1,
        description="onnx: padded tokens per model call; texts are grouped by length under it",
    )
    device: str = "cpu"
    torch_threads: int = Field(
        default=2, ge=1, description="intra-op threads of the model, on either backend"
    )
    backend: InferenceBackend = Field(
        default="onnx",
        description="onnx: ONNX Runtime on the CPU, exported from the local weights on first "
        "start and cached under data_dir; torch: the reference (and the fallback)",
    )
    onnx_variant: OnnxVariant = Field(
        default="fp32", description="int8: opt-in, lossy (see the README's measurements)"
    )
    query_batch_size: int = Field(
        default=32, ge=1, le=256, description="concurrent search queries embedded in one call"
    )
    query_batch_wait_ms: float = Field(
        default=1.0,
        ge=0,
        le=50,
        description="how long an idle embedder waits for more queries to share its call",
    )


class Bm25Section(Section):
    k1: float = Field(default=0.9, ge=0)
    b: float = Field(default=0.4, ge=0, le=1)
    avg_len: float = Field(default=120.0, gt=0, description="expected tokens per chunk")
    language: str = "english"


class ChunkingSection(Section):
    max_chars: int = Field(default=1000, ge=50, le=20_000)
    overlap_chars: int = Field(default=150, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSection:
        if self.overlap_chars >= self.max_chars:
            raise ValueError("chunking.overlap_chars must be smaller than chunking.max_chars")
        return self


class RerankSection(Section):
    model_dir: Path | None = Field(
        default=None, description="sentence-transformers CrossEncoder directory; unset: no rerank"
    )
    top_n: int = Field(default=50, ge=1, le=500, description="fused candidates re-ranked")
    batch_size: int = Field(default=32, ge=1, le=512)
    max_length: int = Field(default=256, ge=16, le=4096)
    cache_size: int = Field(default=20_000, ge=0)
    backend: InferenceBackend = Field(
        default="torch",
        description="torch (measured faster on 50 abstracts of ~170 tokens a pair) or onnx, "
        "exported and cached as embedding.backend; same order either way",
    )
    onnx_variant: OnnxVariant = "fp32"
    threads: int = Field(default=2, ge=1, description="intra-op threads of the cross-encoder")


class SearchSection(Section):
    max_k: int = Field(default=100, ge=1, le=1000)
    prefetch_limit: int = Field(default=100, ge=1, le=2000, description="per road, for fusion")
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=1.0, gt=0)
    sparse_weight: float = Field(
        default=0.5, gt=0, description="BM25 is the weaker road with MiniLM; see the benchmark"
    )
    max_query_chars: int = Field(default=2000, ge=1)


class QueryDriftSection(Section):
    """Query and retrieval drift, per collection and search mode (`drift/monitor.py`)."""

    enabled: bool = True
    baseline_size: int = Field(
        default=200, ge=20, le=5000, description="searches frozen as the baseline after a reset"
    )
    window_size: int = Field(default=200, ge=20, le=5000, description="the latest searches")
    min_window: int = Field(default=50, ge=10, description="searches before signals are judged")
    max_tracks: int = Field(default=64, ge=1, le=1024, description="collection x mode tracked")
    centroid_shift_threshold: float = Field(default=0.15, gt=0, le=2)
    psi_threshold: float = Field(default=0.25, gt=0)
    low_score_share_threshold: float = Field(default=0.2, gt=0, le=1)


class RetrieverSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8200, ge=0, le=65535)
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_document_bytes: int = Field(default=1024 * 1024, ge=1)
    max_documents_per_request: int = Field(default=1000, ge=1)
    admin_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="actor -> bearer token for writes; empty: open"
    )
    insecure: bool = Field(
        default=False,
        description="serve writes without admin_tokens on a non-loopback host (trusted networks)",
    )
    onnx_cache_dir: Path | None = Field(
        default=None,
        description="where exported ONNX models are kept, keyed by the source model's hash; "
        "unset: <data_dir>/retriever/onnx (several data directories may share one)",
    )
    store: StoreSection = StoreSection()
    embedding: EmbeddingSection = EmbeddingSection()
    bm25: Bm25Section = Bm25Section()
    chunking: ChunkingSection = ChunkingSection()
    rerank: RerankSection = RerankSection()
    search: SearchSection = SearchSection()
    drift: QueryDriftSection = QueryDriftSection()


class RetrieverSettings(TriviumSettings):
    retriever: RetrieverSection = RetrieverSection()

    @property
    def edge_dir(self) -> Path:
        return self.data_dir / "retriever" / "edge"

    @property
    def onnx_dir(self) -> Path:
        """Exported ONNX models, keyed by the source model's hash."""
        return self.retriever.onnx_cache_dir or self.data_dir / "retriever" / "onnx"
