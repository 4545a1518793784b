"""Liveness and readiness for Kubernetes probes."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from trivium.registry import Registry

__all__ = ("readyz",)


@get("/readyz", include_in_schema=False)
async def readyz(templates: Registry) -> Response[dict[str, Any]]:
    """Ready: the registry store answers. (A cached registry still serves reads; see /metrics.)"""
    store_ok = await templates.ping()
    body = {
        "status": "ready" if store_ok else "unavailable",
        "checks": {"registry_store": store_ok, "registry_invalidation": templates.cache_subscribed},
    }
    if store_ok:
        return Response(body, status_code=HTTP_200_OK)
    return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "2"})
