"""One feedback event: checked, stored in one Redis round trip, counted, attributed.

An answer id carries its creation time (ids.py), so: an id older than the retention is 410
without asking Redis; a well-formed id Redis does not hold (never served, from the future, or
evicted before its time) is 404. Both name `answer_id`.
"""

from __future__ import annotations

import logging
import time

from redis import exceptions as redis_errors

from trivium.gateway.callers.auth import Caller
from trivium.gateway.callers.errors import ForbiddenFeatureError
from trivium.gateway.callers.keys import ALL_FEATURES
from trivium.gateway.feedback.errors import (
    AnswerExpiredError,
    FeedbackUnavailableError,
    UnknownAnswerError,
)
from trivium.gateway.feedback.ids import answer_created_ms
from trivium.gateway.feedback.metrics import FEEDBACK_METRICS
from trivium.gateway.feedback.schemas import (
    FeedbackReceipt,
    FeedbackRequest,
    checked_value,
    value_label,
)
from trivium.gateway.feedback.store import FORBIDDEN, MISSING, FeedbackEvent, FeedbackStore
from trivium.gateway.feedback.window import deltas
from trivium.gateway.telemetry.stats import StatsRecorder

__all__ = ("FeedbackService",)

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2
CLOCK_SKEW_MS = 300_000
"""An id up to this far in the future may come from a replica whose clock runs ahead."""


class FeedbackService:
    def __init__(self, store: FeedbackStore, stats: StatsRecorder, retention_s: int) -> None:
        self.store = store
        self.stats = stats
        self.retention_ms = retention_s * 1000

    async def submit(self, request: FeedbackRequest, caller: Caller) -> FeedbackReceipt:
        value = checked_value(request)
        answer_id = request.answer_id
        now_ms = int(time.time() * 1000)
        created = answer_created_ms(answer_id)
        if created is None or created > now_ms + CLOCK_SKEW_MS:
            raise _unknown(answer_id)
        if now_ms - created > self.retention_ms:
            raise AnswerExpiredError(
                f"answer {answer_id} is older than the feedback retention "
                f"({self.retention_ms // 1000} s); its record is gone",
                field="answer_id",
            )
        event = FeedbackEvent(
            v=value, t=now_ms, c=request.comment, x=request.correction, u=request.user
        )
        try:
            stored = await self.store.submit(
                answer_id, request.kind, event, features=_features(caller), now_ms=now_ms
            )
        except (redis_errors.RedisError, OSError) as exc:
            raise FeedbackUnavailableError(
                "feedback is kept in Redis, which does not answer; retry shortly",
                retry_after_s=RETRY_AFTER_S,
                extra={"dependency": "redis"},
            ) from exc
        if stored.status == MISSING:
            raise _unknown(answer_id)
        record = stored.record
        assert record is not None
        if stored.status == FORBIDDEN:
            raise ForbiddenFeatureError(
                f"answer {answer_id} is from a feature this key may not call",
                field="answer_id",
                extra={"feature": record.feature},
            )
        kind, previous = request.kind, stored.previous
        FEEDBACK_METRICS.event(
            record.feature,
            record.variant or "",
            record.route,
            kind,
            value_label(kind, value, request.correction),
        )
        counted = previous.v if previous and self.stats.in_window(previous.t / 1000) else None
        self.stats.observe_feedback(
            record.feature, record.route, record.variant, deltas(kind, value, counted)
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "feedback",
                extra={
                    "answer_id": answer_id,
                    "kind": kind,
                    "feature": record.feature,
                    "variant": record.variant,
                    "route": record.route,
                    "policy_hash": record.policy_hash,
                    "replaced": previous is not None,
                    "caller": caller.name,
                },
            )
        return FeedbackReceipt(
            answer_id=answer_id,
            kind=kind,
            value=value,
            replaced=previous is not None,
            feature=record.feature,
            variant=record.variant,
            route=record.route,
            template=record.template,
            adapter=record.adapter,
            policy_hash=record.policy_hash,
            policy_version=record.policy_version,
        )


def _unknown(answer_id: str) -> UnknownAnswerError:
    return UnknownAnswerError(
        f"no answer {answer_id} (never served, or its record expired)", field="answer_id"
    )


def _features(caller: Caller) -> frozenset[str] | None:
    """The features whose answers this caller may give feedback on; None: every one."""
    record = caller.record
    if record is None or ALL_FEATURES in record.features:
        return None
    return frozenset(record.features)
