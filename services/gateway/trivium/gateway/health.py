"""Readiness for Kubernetes probes and load balancers (liveness, `/healthz`, never looks at
Redis: a replica whose store is down must not be restarted for it).

`/readyz` answers:

* 200 `ready`: the registry store answers.
* 200 `degraded`: the store is down, but this replica still serves from its cache: at least
  one template the active policy needs is cached (or the policy needs none). `failing`
  names the checks that fail; `cache` says which templates are served from memory.
* 503 `unavailable` (Retry-After): the store is down and none of the templates the policy
  needs is cached, so no templated feature can answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from trivium.gateway.policy import LoadedPolicy, Policy
from trivium.registry import Registry

__all__ = ("needed_templates", "readyz")

RETRY_AFTER_S = 2
PING_TIMEOUT_S = 0.5
"""A hung Redis must not hang the probe (the client's own retries would take seconds)."""


async def _store_answers(templates: Registry) -> bool:
    try:
        return await asyncio.wait_for(templates.ping(), PING_TIMEOUT_S)
    except TimeoutError:
        return False


def needed_templates(policy: Policy) -> set[str]:
    """Every template reference an arm of the policy resolves (variants and fallbacks too)."""
    refs: set[str] = set()
    for name, feature in policy.features.items():
        for variant in (None, *feature.variants):
            arm = feature.arm(name, variant)
            for each in (arm, *feature.fallback_arms(arm)):
                if each.template is not None:
                    refs.add(each.template)
    return refs


@get("/readyz", include_in_schema=False)
async def readyz(templates: Registry, policy: LoadedPolicy) -> Response[dict[str, Any]]:
    store_ok = await _store_answers(templates)
    checks = {"registry_store": store_ok, "registry_invalidation": templates.cache_subscribed}
    if store_ok:
        return Response({"status": "ready", "checks": checks}, status_code=HTTP_200_OK)
    needed = needed_templates(policy.policy)
    cached = sorted(ref for ref in needed if templates.is_cached(ref))
    serving = bool(cached) or not needed
    body = {
        "status": "degraded" if serving else "unavailable",
        "checks": checks,
        "failing": [name for name, ok in checks.items() if not ok],
        "cache": {"templates_cached": cached, "templates_missing": sorted(needed - set(cached))},
    }
    if serving:
        return Response(body, status_code=HTTP_200_OK)
    return Response(
        body,
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
