"""HTTP: read the active policy, and reload it from its file (admin)."""

from __future__ import annotations

import logging

import msgspec
from litestar import Controller, get, post
from litestar.status_codes import HTTP_200_OK

from trivium.common.http.auth import ACTOR_DEPENDENCY
from trivium.gateway.policy.holder import LoadedPolicy, PolicyHolder, ReloadOutcome
from trivium.gateway.policy.model import Feature, Upstream

__all__ = ("PolicyController", "PolicyView")

log = logging.getLogger(__name__)


class PolicyView(msgspec.Struct):
    version: int | None
    hash: str
    loaded_at: float
    source: str | None
    features: dict[str, Feature]
    upstreams: dict[str, Upstream]
    """Upstreams name the environment variable of their API key, never the key."""


class PolicyController(Controller):
    path = "/v1"
    tags = ["policy"]

    @get("/policy", sync_to_thread=False)
    def show(self, policy: LoadedPolicy) -> PolicyView:
        return PolicyView(
            version=policy.policy.version,
            hash=policy.hash,
            loaded_at=policy.loaded_at,
            source=policy.source,
            features=policy.policy.features,
            upstreams=policy.policy.upstreams,
        )

    @post(
        "/policy:reload",
        status_code=HTTP_200_OK,
        dependencies={"actor": ACTOR_DEPENDENCY},
        summary="Reload the policy file now; 422 lists every error and keeps the old policy",
    )
    async def reload(self, policy_holder: PolicyHolder, actor: str) -> ReloadOutcome:
        log.info("policy reload requested", extra={"actor": actor})
        return await policy_holder.reload(trigger=f"api:{actor}")
