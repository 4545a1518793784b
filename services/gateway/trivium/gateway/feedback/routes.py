"""HTTP: `POST /v1/feedback` (scope `feedback`) and `GET /v1/feedback/corrections` (scope
`trials`: the rows carry the users' inputs)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from redis import exceptions as redis_errors

from trivium.common.errors import UnavailableError
from trivium.common.http.strict_body import decode_body_strictly
from trivium.gateway.callers.auth import Caller, require_scope
from trivium.gateway.feedback.schemas import FeedbackReceipt, FeedbackRequest
from trivium.gateway.feedback.service import RETRY_AFTER_S, FeedbackService
from trivium.gateway.policy.document import NAME_PATTERN as FEATURE_PATTERN
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("CORRECTIONS_MEDIA_TYPE", "MAX_CORRECTION_ROWS", "FeedbackController")

CORRECTIONS_MEDIA_TYPE = "application/x-ndjson"
MAX_CORRECTION_ROWS = 1000
MAX_SCAN = 20_000
"""Stream entries (of every feature) one export request reads at most."""
CURSOR_PATTERN = r"^[0-9]{1,15}-[0-9]{1,15}$"
_ENCODER = msgspec.json.Encoder()


def _service(request: Request[Any, Any, Any]) -> FeedbackService:
    service: FeedbackService = request.app.state.feedback
    return service


class FeedbackController(Controller):
    path = "/v1/feedback"
    tags = ["feedback"]
    guards = [require_scope]
    before_request = staticmethod(decode_body_strictly)

    @post(
        "/",
        opt={"scope": "feedback"},
        security=scoped("feedback"),
        status_code=HTTP_200_OK,
        responses={
            HTTP_200_OK: ResponseSpec(FeedbackReceipt, description="stored and attributed"),
            **native_errors(400, 404, 410, 413),
        },
        summary="Report what became of an answer: completed, rating, thumbs, corrected, escalated",
        description="Several events per answer are kept; the last of each kind counts. "
        "404 `answer_not_found` (field `answer_id`): never served or its record is gone; 410 "
        "`answer_expired`: older than `gateway.feedback.retention_s` (the id carries its "
        "creation time); 403 `forbidden_feature`: the answer's feature is not the key's; 400 "
        "names the field (`value` by kind: completed/escalated true|false, rating 1..5, "
        "thumbs up|down, corrected true or absent with `correction`). 503 "
        "`feedback_unavailable` while Redis does not answer.",
    )
    async def submit(
        self, request: Request[Any, Any, Any], data: FeedbackRequest
    ) -> FeedbackReceipt:
        caller: Caller = request.state.caller
        return await _service(request).submit(data, caller)

    @get(
        "/corrections",
        opt={"scope": "trials"},
        security=scoped("trials"),
        responses={
            HTTP_200_OK: ResponseSpec(
                str,
                description="JSONL: one `DatasetRow` a line (id = the answer id, `expected` "
                "from the correction, the answer's kept `input` or `messages`, tags "
                "`feedback`, `route:<r>`, `variant:<v>`); header `x-next-cursor` when more "
                "may follow",
                media_type=CORRECTIONS_MEDIA_TYPE,
            ),
            **native_errors(400),
        },
        media_type=CORRECTIONS_MEDIA_TYPE,
        summary="The product's corrections of a feature's answers, as candidate dataset rows",
        description="Answers whose input was kept (`gateway.feedback.max_input_bytes`) only; "
        "oldest first; an answer corrected twice in one page gives its last correction.",
    )
    async def corrections(
        self,
        request: Request[Any, Any, Any],
        feature: Annotated[str, Parameter(pattern=FEATURE_PATTERN, description="feature name")],
        since: Annotated[
            int, Parameter(ge=0, le=2**47, description="from this time (ms since the epoch)")
        ] = 0,
        cursor: Annotated[
            str | None,
            Parameter(pattern=CURSOR_PATTERN, description="the previous page's x-next-cursor"),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_CORRECTION_ROWS)] = MAX_CORRECTION_ROWS,
    ) -> Response[bytes]:
        try:
            page = await _service(request).store.corrections(
                feature, since, cursor, limit, MAX_SCAN
            )
        except (redis_errors.RedisError, OSError) as exc:
            raise UnavailableError(
                "corrections are kept in Redis, which does not answer; retry shortly",
                retry_after_s=RETRY_AFTER_S,
                extra={"dependency": "redis"},
            ) from exc
        body = b"".join(_ENCODER.encode(row) + b"\n" for row in page.rows)
        headers = {"x-next-cursor": page.next_cursor} if page.next_cursor else None
        return Response(body, media_type=CORRECTIONS_MEDIA_TYPE, headers=headers)
