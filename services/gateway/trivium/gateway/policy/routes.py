"""HTTP: read the active policy, check a candidate without applying it, and reload the
policy from its file (admin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK

from trivium.common.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from trivium.gateway.callers.auth import ACTOR, require_scope
from trivium.gateway.policy.check import PolicyReport, check_policy
from trivium.gateway.policy.holder import LoadedPolicy, PolicyHolder, ReloadOutcome
from trivium.gateway.policy.model import Feature, Upstream
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("MAX_POLICY_BYTES", "POLICY_MEDIA_TYPES", "PolicyController", "PolicyView")

MAX_POLICY_BYTES = 256 * 1024
"""The largest policy `POST /v1/policy:validate` reads (the example is under 4 KiB)."""
POLICY_MEDIA_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "application/json",
    "text/plain",
)
"""JSON is YAML: every one of these is read by the same YAML loader as the policy file."""

log = logging.getLogger(__name__)


class EffectiveWeightsView(msgspec.Struct, frozen=True):
    shares: dict[str, float]
    """Variant -> share of the feature's traffic now (0..1)."""
    why: str
    """From the file alone, or the file plus its rollout's state (step, status, reason)."""


class PolicyView(msgspec.Struct):
    version: int | None
    hash: str
    loaded_at: float
    source: str | None
    features: dict[str, Feature]
    upstreams: dict[str, Upstream]
    """Upstreams name the environment variable of their API key, never the key."""
    effective_weights: dict[str, EffectiveWeightsView] = {}
    """Per feature with variants: the shares requests are assigned by now, and why."""


EffectiveWeightsSource = Callable[[], Mapping[str, Any]]


class PolicyController(Controller):
    path = "/v1"
    tags = ["policy"]
    guards = [require_scope]

    @get(
        "/policy",
        opt={"scope": "read"},
        security=scoped("read"),
        responses=native_errors(),
        sync_to_thread=False,
    )
    def show(self, request: Request[Any, Any, Any], policy: LoadedPolicy) -> PolicyView:
        source: EffectiveWeightsSource | None = getattr(
            request.app.state, "effective_weights", None
        )
        effective = {} if source is None else source()
        return PolicyView(
            version=policy.policy.version,
            hash=policy.hash,
            loaded_at=policy.loaded_at,
            source=policy.source,
            features=policy.policy.features,
            upstreams=policy.policy.upstreams,
            effective_weights={
                name: EffectiveWeightsView(weights.shares, weights.why)
                for name, weights in effective.items()
            },
        )

    @post(
        "/policy:validate",
        opt={"scope": "read"},
        security=scoped("read"),
        responses=native_errors(400, 413, 415, 422),
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_POLICY_BYTES,
        summary="Check a policy (YAML or JSON body) as a reload would, applying nothing; "
        "422 lists every error, 200 the hash it would have and its warnings",
    )
    async def validate(self, request: Request[Any, Any, Any]) -> PolicyReport:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type not in POLICY_MEDIA_TYPES:
            raise UnsupportedMediaTypeError(
                f"send the policy as one of: {', '.join(POLICY_MEDIA_TYPES)} "
                f"(got {media_type or 'no content type'})",
                field="content-type",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_POLICY_BYTES:
            raise _too_large(int(declared))
        body = await request.body()
        if len(body) > MAX_POLICY_BYTES:
            raise _too_large(len(body))
        checked = await asyncio.to_thread(check_policy, body, "request body")
        return checked.report()

    @post(
        "/policy:reload",
        status_code=HTTP_200_OK,
        opt={"scope": "policy:reload"},
        security=scoped("policy:reload"),
        responses=native_errors(422),
        dependencies={"actor": ACTOR},
        summary="Reload the policy file now; 422 lists every error and keeps the old policy",
    )
    async def reload(self, policy_holder: PolicyHolder, actor: str) -> ReloadOutcome:
        log.info("policy reload requested", extra={"actor": actor})
        return await policy_holder.reload(trigger=f"api:{actor}")


def _too_large(size: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the policy is {size} bytes; the limit is {MAX_POLICY_BYTES}", field="body"
    )
