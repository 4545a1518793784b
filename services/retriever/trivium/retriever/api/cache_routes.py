"""HTTP routes of the semantic cache; the logic lives in `SemanticCache`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from trivium.common.contracts.retriever import (
    NAMESPACE_PATTERN,
    CacheLookup,
    CacheLookupResult,
    CacheNamespaceStats,
    CacheStore,
    CacheStoreResult,
)
from trivium.common.http.auth import ACTOR_DEPENDENCY
from trivium.common.http.openapi import ADMIN_SECURITY, problem_responses
from trivium.retriever.service import RetrieverService

__all__ = ("CacheController",)

Namespace = Annotated[
    str, Parameter(pattern=NAMESPACE_PATTERN, max_length=63, description="cache namespace")
]


class CacheController(Controller):
    """Lookups and stores are the gateway's data path, open like searches; dropping a
    namespace is an admin write."""

    path = "/v1/cache"
    tags = ["cache"]

    @post(
        "/{namespace:str}/lookup",
        status_code=HTTP_200_OK,
        responses=problem_responses(400, 404, 413),
    )
    async def lookup(
        self, retriever: RetrieverService, namespace: Namespace, data: CacheLookup
    ) -> CacheLookupResult:
        """The nearest live entry of the scope at or above the threshold; `hit: null` when
        none (or no such namespace yet). 404 only for an unknown `collection`."""
        return await retriever.cache.lookup(namespace, data)

    @post(
        "/{namespace:str}/store",
        status_code=HTTP_200_OK,
        responses=problem_responses(400, 404, 413),
    )
    async def store(
        self, retriever: RetrieverService, namespace: Namespace, data: CacheStore
    ) -> CacheStoreResult:
        """Store one answer (the namespace is created on first store), then hold the bound."""
        return await retriever.cache.store(namespace, data)

    @get("/{namespace:str}", responses=problem_responses(400, 404))
    async def stats(self, retriever: RetrieverService, namespace: Namespace) -> CacheNamespaceStats:
        return await retriever.cache.stats(namespace)

    @delete(
        "/{namespace:str}",
        status_code=HTTP_204_NO_CONTENT,
        dependencies={"actor": ACTOR_DEPENDENCY},
        security=ADMIN_SECURITY,
        responses=problem_responses(400, 401, 404),
    )
    async def drop(self, retriever: RetrieverService, namespace: Namespace, actor: str) -> None:
        await retriever.cache.drop(namespace)
