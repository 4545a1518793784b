"""Liveness and readiness of the model service."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.status_codes import HTTP_200_OK

from trivium.model.adapters.manager import AdapterManager

__all__ = ("readyz",)


@get("/readyz", include_in_schema=False)
async def readyz(adapters: AdapterManager) -> Response[dict[str, Any]]:
    """Ready once the base model is loaded (the lifespan finished); adapters come and go."""
    body = {
        "status": "ready",
        "checks": {
            "engine": True,
            "registry_store": await adapters.registry.ping(),
            "registry_invalidation": adapters.registry.cache_subscribed,
            "adapters_loaded": len(adapters.engine.loaded_adapters()),
        },
    }
    return Response(body, status_code=HTTP_200_OK)
