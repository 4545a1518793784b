"""Liveness and readiness of the model service."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.status_codes import HTTP_200_OK

from trivium.model.adapters.manager import AdapterManager

__all__ = ("readyz",)


@get("/readyz", include_in_schema=False)
async def readyz(adapters: AdapterManager) -> Response[dict[str, Any]]:
    """Ready once the base model is loaded (the lifespan finished); adapters come and go.

    The registry's store only tells which adapter versions to load: while it is down, the
    loaded adapters keep serving, so the answer is 200 `degraded`, naming what fails."""
    store_ok = await adapters.registry.ping()
    checks = {
        "engine": True,
        "registry_store": store_ok,
        "registry_invalidation": adapters.registry.cache_subscribed,
    }
    body: dict[str, Any] = {
        "status": "ready" if store_ok else "degraded",
        "checks": {**checks, "adapters_loaded": len(adapters.engine.loaded_adapters())},
    }
    if not store_ok:
        body["failing"] = [name for name, ok in checks.items() if not ok]
    return Response(body, status_code=HTTP_200_OK)
