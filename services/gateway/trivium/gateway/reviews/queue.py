"""What the invoke path hands the review queue, and the queue's depth gauges.

`ReviewQueue.consider` runs once per answer (production traffic, not cached): a flagged,
withheld or held answer always enters the queue, a passing one with the feature's
`review.sample_rate`. One Redis round trip per case entered; none otherwise. A held answer
that cannot be queued is a 503 (the caller must not be left waiting on a review that does
not exist); any other is served as it is and counted as dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable, Sequence

import msgspec
from redis import exceptions as redis_errors

from trivium.common.aio import Periodic
from trivium.common.contracts.retriever import SearchHit
from trivium.common.errors import UnavailableError
from trivium.gateway.callers import Caller
from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse
from trivium.gateway.policy.model import Policy
from trivium.gateway.reviews.metrics import REVIEW_METRICS, ReviewMetrics
from trivium.gateway.reviews.schemas import Passage, Reason, ReviewCase
from trivium.gateway.reviews.store import ReviewStore

__all__ = ("ReviewQueue", "ReviewUnavailableError", "new_review_id")

log = logging.getLogger(__name__)

STARTUP_POLL_S = 0.5
"""How long start-up waits for the first queue reading (then the loop retries)."""

RETRY_AFTER_S = 2
DECISIONS = ("approve", "correct", "reject")
REASONS = ("flagged", "withheld", "held", "sampled")


class ReviewUnavailableError(UnavailableError):
    code = "review_unavailable"
    title = "Review queue unavailable"


def new_review_id(now_ms: int) -> str:
    return f"rev_{now_ms:012x}{os.urandom(8).hex()}"


def reason_of(response: InvokeResponse, sample_rate: float, draw: float) -> Reason | None:
    verdict = response.verdict
    if verdict in ("flagged", "withheld", "held"):
        return verdict
    if verdict == "passed" and draw < sample_rate:
        return "sampled"
    return None


class ReviewQueue:
    def __init__(
        self,
        store: ReviewStore,
        *,
        poll_s: float,
        policy: Callable[[], Policy],
        metrics: ReviewMetrics = REVIEW_METRICS,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self.draw = draw
        self._loop = Periodic("review-depth", poll_s, self.poll, log)

    async def consider(
        self,
        request: InvokeRequest,
        response: InvokeResponse,
        caller: Caller,
        request_id: str,
        hits: Sequence[SearchHit],
        text: str | None,
        sample_rate: float,
    ) -> InvokeResponse:
        """The answer as the caller gets it: with `review_id` when it entered the queue."""
        reason = reason_of(response, sample_rate, self.draw() if sample_rate else 1.0)
        if reason is None:
            return response
        now_ms = int(time.time() * 1000)
        case = ReviewCase(
            id=new_review_id(now_ms),
            feature=response.feature,
            reason=reason,
            created_ms=now_ms,
            answer_id=response.id,
            request_id=request_id,
            caller=caller.name,
            input=request.input,
            messages=request.messages,
            output=text,
            passages=[
                Passage(i, h.doc_id, h.chunk_id, h.text, h.score, h.source, h.title)
                for i, h in enumerate(hits, start=1)
            ],
            citations=response.citations,
            lineage=response.lineage,
            route=response.route,
            variant=response.variant,
            groundedness=response.groundedness,
            verdict=response.verdict,
        )
        owner = caller.record.id if caller.record is not None else ""
        try:
            stored = await self.store.enqueue(case, owner)
        except (redis_errors.RedisError, OSError) as exc:
            return self._not_queued(case, response, "redis", repr(exc))
        if not stored:
            return self._not_queued(case, response, "full", "the feature's queue is full")
        self.metrics.enqueued.labels(case.feature, reason).inc()
        log.info(
            "review enqueued",
            extra={"review": case.id, "feature": case.feature, "reason": reason},
        )
        return msgspec.structs.replace(response, review_id=case.id, needs_review=True)

    def _not_queued(
        self, case: ReviewCase, response: InvokeResponse, cause: str, error: str
    ) -> InvokeResponse:
        self.metrics.dropped.labels(case.feature, cause).inc()
        log.warning(
            "answer not queued for review",
            extra={"feature": case.feature, "reason": case.reason, "cause": cause, "error": error},
        )
        if case.reason == "held":
            raise ReviewUnavailableError(
                "this answer must be reviewed before it is given, and the review queue cannot "
                "take it now; retry shortly",
                retry_after_s=RETRY_AFTER_S,
                extra={"dependency": "redis" if cause == "redis" else "review_queue"},
            )
        return response

    async def poll(self) -> None:
        """Depth, oldest pending age and SLO per feature of the active policy."""
        now_ms = int(time.time() * 1000)
        for name, feature in self.policy().features.items():
            depth = await self.store.depth(name)
            self.metrics.depth.labels(name).set(depth.pending)
            oldest = 0.0 if depth.oldest_ms is None else max(now_ms - depth.oldest_ms, 0) / 1000
            self.metrics.oldest.labels(name).set(oldest)
            self.metrics.slo.labels(name).set(feature.review.slo_s)
            for kind in DECISIONS:  # exported from 0, so increase() sees the first
                self.metrics.decisions.labels(name, kind)
            for why in REASONS:
                self.metrics.enqueued.labels(name, why)

    async def start(self) -> None:
        """The gauges at once (a scrape right after start-up sees every feature), then
        every `poll_s`. A Redis that hangs must not hold the gateway's start-up: the first
        reading waits at most `STARTUP_POLL_S`."""
        try:
            await asyncio.wait_for(self.poll(), STARTUP_POLL_S)
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            log.warning("review queue depth not read", extra={"error": repr(exc)})
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
