"""HTTP: `GET /v1/reviews`, `GET /v1/reviews/{id}`, `POST /v1/reviews/{id}:decide`."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from redis import exceptions as redis_errors

from trivium.common.errors import InvalidInputError
from trivium.common.http.strict_body import decode_body_strictly
from trivium.gateway.callers.auth import Caller, require_scope
from trivium.gateway.policy.document import NAME_PATTERN as FEATURE_PATTERN
from trivium.gateway.reviews.access import reader_of
from trivium.gateway.reviews.errors import ReviewDecidedError, UnknownReviewError
from trivium.gateway.reviews.metrics import REVIEW_METRICS
from trivium.gateway.reviews.queue import RETRY_AFTER_S, ReviewUnavailableError
from trivium.gateway.reviews.schemas import (
    REVIEW_ID_PATTERN,
    DecisionRequest,
    ReviewDecision,
    ReviewList,
    ReviewStatus,
    ReviewView,
)
from trivium.gateway.reviews.store import ALREADY, MISSING, ReviewStore
from trivium.gateway.reviews.views import view_of
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("MAX_DECISION_BYTES", "ReviewController", "check_decision")

log = logging.getLogger(__name__)

MAX_DECISION_BYTES = 64 * 1024
MAX_LIST = 1000
DECIDE_PATTERN = REVIEW_ID_PATTERN.removesuffix("$") + ":decide$"


def _store(request: Request[Any, Any, Any]) -> ReviewStore:
    store: ReviewStore = request.app.state.review_store
    return store


def _unavailable(exc: Exception) -> ReviewUnavailableError:
    return ReviewUnavailableError(
        "reviews are kept in Redis, which does not answer; retry shortly",
        retry_after_s=RETRY_AFTER_S,
        extra={"dependency": "redis", "error": type(exc).__name__},
    )


def check_decision(data: DecisionRequest) -> None:
    """`correct` needs a correction; `approve` takes none (400 naming `correction`)."""
    if data.decision == "correct" and data.correction is None:
        raise InvalidInputError("`correct` needs the correction", field="correction")
    if data.decision == "approve" and data.correction is not None:
        raise InvalidInputError(
            "`approve` gives the model's answer: send `correct` to change it", field="correction"
        )


async def decide(
    store: ReviewStore, review_id: str, data: DecisionRequest, reviewer: str
) -> ReviewView:
    """Record a reviewer's decision (404 unknown, 409 decided already)."""
    check_decision(data)
    now_ms = int(time.time() * 1000)
    decision = ReviewDecision(data.decision, reviewer, now_ms, data.correction, data.note)
    try:
        decided = await store.decide(review_id, decision, now_ms)
    except (redis_errors.RedisError, OSError) as exc:
        raise _unavailable(exc) from exc
    if decided.result == MISSING:
        raise UnknownReviewError(f"no review {review_id!r} (or past retention)", field="id")
    if decided.result == ALREADY:
        previous = decided.previous
        raise ReviewDecidedError(
            f"review {review_id!r} was decided already ({decided.previous_status})",
            field="id",
            extra={
                "status": decided.previous_status,
                "reviewer": previous.reviewer if previous else None,
            },
        )
    assert decided.case is not None
    REVIEW_METRICS.decisions.labels(decided.case.feature, data.decision).inc()
    log.info(
        "review decided",
        extra={
            "review": review_id,
            "feature": decided.case.feature,
            "decision": data.decision,
            "reviewer": reviewer,
        },
    )
    stored = await store.get(review_id)
    if stored is None:  # expired in between: answer from what the script returned
        raise UnknownReviewError(f"no review {review_id!r} (or past retention)", field="id")
    return view_of(stored, reviewer=True)


class ReviewController(Controller):
    path = "/v1/reviews"
    tags = ["reviews"]
    before_request = staticmethod(decode_body_strictly)

    @get(
        "/",
        guards=[require_scope],
        opt={"scope": "review"},
        security=scoped("review"),
        responses={
            HTTP_200_OK: ResponseSpec(ReviewList, description="newest first"),
            **native_errors(400),
        },
        summary="The review queue: a feature's (or every feature's) reviews, by status",
    )
    async def list_reviews(
        self,
        request: Request[Any, Any, Any],
        feature: Annotated[
            str | None, Parameter(pattern=FEATURE_PATTERN, description="feature name")
        ] = None,
        status: Annotated[ReviewStatus | None, Parameter(description="e.g. pending")] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIST)] = 100,
    ) -> ReviewList:
        try:
            return ReviewList(await _store(request).summaries(feature, status, limit))
        except (redis_errors.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    @get(
        "/{review_id:str}",
        security=scoped("review"),
        responses={
            HTTP_200_OK: ResponseSpec(ReviewView, description="the review"),
            **native_errors(400, 404),
        },
        summary="One review: the case (scope review), or its outcome (the caller it held)",
        description="A reviewer (scope `review`) gets the case (request, passages, citations, "
        "output, lineage, groundedness) and the decision. The key whose request was held "
        "(scope `invoke`; anyone in `auth.mode: open`) gets only the outcome: `status`, and "
        "once decided `output` (the model's answer when approved, else the correction) or "
        "`refusal`; to any other key the review does not exist (404 `review_not_found`).",
    )
    async def show(
        self,
        request: Request[Any, Any, Any],
        review_id: Annotated[str, Parameter(pattern=REVIEW_ID_PATTERN, description="review id")],
    ) -> ReviewView:
        headers = request.headers
        reader = await reader_of(
            request.app.state.authenticator,
            headers.get("authorization"),
            headers.get("x-trivium-actor", ""),
        )
        try:
            stored = await _store(request).get(review_id)
        except (redis_errors.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        if stored is None or not (reader.reviewer or reader.owns(stored.owner)):
            raise UnknownReviewError(f"no review {review_id!r} (or past retention)", field="id")
        return view_of(stored, reviewer=reader.reviewer)

    @post(
        "/{review_id:str}",
        guards=[require_scope],
        opt={"scope": "review"},
        security=scoped("review"),
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_DECISION_BYTES,
        responses={
            HTTP_200_OK: ResponseSpec(ReviewView, description="decided"),
            **native_errors(400, 404, 409, 413),
        },
        summary="Decide a review: `POST /v1/reviews/{id}:decide`",
        description="`{decision: approve|correct|reject, correction?, note?}`; `correct` needs "
        "`correction`, `approve` takes none (400 naming `correction`). Audited with the "
        "reviewer's key name. 404 `review_not_found`; 409 `review_decided` (with `status` and "
        "`reviewer`) for a second decision.",
    )
    async def decide(
        self,
        request: Request[Any, Any, Any],
        review_id: Annotated[
            str, Parameter(pattern=DECIDE_PATTERN, description="`<review id>:decide`")
        ],
        data: DecisionRequest,
    ) -> ReviewView:
        caller: Caller = request.state.caller
        target = review_id.removesuffix(":decide")
        return await decide(_store(request), target, data, caller.name)
