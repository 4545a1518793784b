"""The retriever application factory: models load here, so a bad model fails start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from trivium.common.contracts.retriever import (
    MAX_RERANK_TOP,
    METADATA_KEY_PATTERN,
    CacheLookup,
    CacheStore,
    CollectionCreate,
    IngestRequest,
    SearchRequest,
)
from trivium.common.http.exposure import require_admin_credential
from trivium.common.http.openapi import (
    SchemaPatch,
    answer_options_with_every_method,
    constrain,
    define,
    describe_structs,
    openapi_config,
    unions_as_any_of,
)
from trivium.common.http.probes import PrometheusController, healthz, http_metrics_middleware
from trivium.common.http.problems import PROBLEM_EXCEPTION_HANDLERS
from trivium.common.http.request_id import RequestIdMiddleware
from trivium.common.http.strict_body import decode_body_strictly
from trivium.retriever.api.cache_routes import CacheController
from trivium.retriever.api.health import readyz
from trivium.retriever.api.routes import CollectionController
from trivium.retriever.config import RetrieverSettings
from trivium.retriever.search.embedding import DenseEmbedder, SparseEmbedder
from trivium.retriever.search.filters import FILTER_JSON_SCHEMA
from trivium.retriever.search.rerank import Reranker
from trivium.retriever.service import RetrieverService
from trivium.retriever.store.base import VectorStore
from trivium.retriever.store.edge import EdgeStore
from trivium.retriever.store.qdrant import QdrantStore, client_for, is_local

__all__ = ("build_service", "create_app")

log = logging.getLogger(__name__)


def build_service(settings: RetrieverSettings) -> RetrieverService:
    """Load the models and pick the store; raises EmbeddingLoadError / RerankerLoadError."""
    section = settings.retriever
    store: VectorStore
    if section.store.backend == "edge":
        store = EdgeStore(settings.edge_dir, section.store.optimize_after_s)
    else:
        store = QdrantStore(client_for(section.store), local=is_local(section.store))
    rerank = section.rerank
    reranker = (
        Reranker(
            rerank.model_dir,
            batch_size=rerank.batch_size,
            max_length=rerank.max_length,
            cache_size=rerank.cache_size,
            backend=rerank.backend,
            onnx_variant=rerank.onnx_variant,
            cache_dir=settings.onnx_dir,
            threads=rerank.threads,
        )
        if rerank.model_dir is not None
        else None
    )
    dense = DenseEmbedder(section.embedding, cache_dir=settings.onnx_dir)
    return RetrieverService(section, store, dense, SparseEmbedder(section.bm25), reranker)


def create_app(
    settings: RetrieverSettings | None = None, service: RetrieverService | None = None
) -> Litestar:
    settings = settings or RetrieverSettings()
    section = settings.retriever
    require_admin_credential("retriever", section.host, section.admin_tokens, section.insecure)
    retriever = service or build_service(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await retriever.store.start()
        versions = await retriever.index_versions()  # the one full scan, before any search
        log.info(
            "retriever ready",
            extra={
                "backend": retriever.store.backend,
                "embedding_model": retriever.dense.name,
                "embedding_backend": retriever.dense.backend,
                "rerank_backend": retriever.reranker.backend if retriever.reranker else None,
                "index_versions": versions,
            },
        )
        try:
            yield
        finally:
            await retriever.store.close()

    def provide_retriever() -> RetrieverService:
        return retriever

    app = Litestar(
        route_handlers=[
            CollectionController,
            CacheController,
            PrometheusController,
            healthz,
            readyz,
        ],
        dependencies={"retriever": Provide(provide_retriever, sync_to_thread=False)},
        lifespan=[lifespan],
        state=State({"settings": settings, "admin_tokens": settings.retriever.admin_tokens}),
        middleware=[RequestIdMiddleware, http_metrics_middleware("retriever")],
        exception_handlers=PROBLEM_EXCEPTION_HANDLERS,
        before_request=decode_body_strictly,
        request_max_body_size=settings.retriever.max_request_bytes,
        openapi_config=openapi_config("Trivium retriever", *schema_patches(settings, retriever)),
        logging_config=None,
    )
    return answer_options_with_every_method(app)


def schema_patches(settings: RetrieverSettings, retriever: RetrieverService) -> list[SchemaPatch]:
    """What the OpenAPI schema cannot learn from the types: this deployment's limits."""
    section = settings.retriever
    return [
        describe_structs(CollectionCreate, IngestRequest, SearchRequest, CacheLookup, CacheStore),
        unions_as_any_of,
        define("SearchRequest", "filter", FILTER_JSON_SCHEMA),
        constrain("SearchRequest", "k", maximum=section.search.max_k),
        constrain("SearchRequest", "query", maxLength=section.search.max_query_chars),
        constrain(
            "SearchRequest",
            "rerank",
            **({} if retriever.reranker is not None else {"enum": [False]}),
            description="re-rank with the cross-encoder"
            + ("" if retriever.reranker is not None else " (none is configured here)"),
        ),
        constrain("SearchRequest", "rerank_top", maximum=MAX_RERANK_TOP),
        constrain("DocumentIn", "metadata", propertyNames={"pattern": METADATA_KEY_PATTERN}),
        constrain("CacheLookup", "text", maxLength=section.search.max_query_chars),
        constrain("CacheStore", "text", maxLength=section.search.max_query_chars),
        constrain("IngestRequest", "documents", maxItems=section.max_documents_per_request),
    ]
