"""One request as resolved when it arrived, and what its roads share."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from trivium.common.contracts.retriever import SearchHit
from trivium.gateway.callers import ANONYMOUS, Caller, Grant
from trivium.gateway.invoke.schemas import InvokeRequest
from trivium.gateway.policy import LoadedPolicy
from trivium.gateway.policy.model import Arm, Feature
from trivium.gateway.telemetry.metrics import Traffic
from trivium.registry import ArtifactVersion

__all__ = ("Call",)


@dataclass(slots=True)
class Call:
    """The policy the request keeps, its arm and its deadline.

    `references` memoises registry resolutions for this request, so the cache key and the road
    that follows resolve each template or adapter once. `waited_s` adds up the time spent
    waiting on the retriever and upstreams, for the gateway's own overhead.
    """

    request_id: str
    feature_name: str
    feature: Feature
    loaded: LoadedPolicy
    arm: Arm
    request: InvokeRequest
    deadline: float
    started: float = field(default_factory=time.perf_counter)
    references: dict[str, ArtifactVersion | str] = field(default_factory=dict)
    waited_s: float = 0.0
    caller: Caller = ANONYMOUS
    answer_id: str = ""
    """The answer's id (`InvokeResponse.id`, the OpenAI route's `id`): carries its creation
    time (trivium.gateway.feedback.ids); feedback names it."""
    hits: Sequence[SearchHit] = ()
    text: str | None = None
    """The passages and the generated text of the road that answered (the review case)."""
    grant: Grant | None = None
    """Set by the limiter when it admitted the request: what to settle, and the answer's
    `x-ratelimit-*` headers."""

    @property
    def max_tokens(self) -> int:
        limit = self.feature.limits.max_tokens
        return min(self.request.max_tokens or limit, limit)

    def rate_limit_headers(self) -> dict[str, str] | None:
        return self.grant.headers if self.grant is not None and self.grant.headers else None

    @property
    def traffic(self) -> Traffic:
        """`trial` when a trial forced the arm: no cache, no shadows, no production stats."""
        return "production" if self.request.trial is None else "trial"

    @property
    def variant(self) -> str:
        return self.arm.variant or ""

    def copy_for(self, arm: Arm) -> Call:
        """The same request down another arm, on a fresh deadline (a shadow run)."""
        return Call(
            request_id=self.request_id,
            feature_name=self.feature_name,
            feature=self.feature,
            loaded=self.loaded,
            arm=arm,
            request=self.request,
            deadline=time.monotonic() + self.feature.limits.timeout_s,
            caller=self.caller,
        )
