"""Readiness of the retriever: models loaded (start-up) and the store answering."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from trivium.retriever.service import RetrieverService

__all__ = ("readyz",)


@get("/readyz", include_in_schema=False)
async def readyz(retriever: RetrieverService) -> Response[dict[str, Any]]:
    try:
        collections = len(await retriever.store.collections())
        store_ok = True
    except Exception:
        collections, store_ok = 0, False
    body = {
        "status": "ready" if store_ok else "unavailable",
        "checks": {
            "store": store_ok,
            "backend": retriever.store.backend,
            "collections": collections,
            "embedding_model": retriever.dense.name,
            "reranker": retriever.reranker.model_name if retriever.reranker else None,
        },
    }
    status = HTTP_200_OK if store_ok else HTTP_503_SERVICE_UNAVAILABLE
    headers = None if store_ok else {"Retry-After": "5"}
    return Response(body, status_code=status, headers=headers)
