"""HTTP: `POST /v1/features/{feature}/invoke`, JSON or server-sent events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from trivium.common.errors import TriviumError
from trivium.common.http.problems import problem_event
from trivium.common.logs import REQUEST_ID
from trivium.gateway.invoke.pipeline import StreamEvent
from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse
from trivium.gateway.invoke.serving import serving
from trivium.gateway.invoke.sse import EventStream, PeekedStream, sse_event, start_stream
from trivium.gateway.invoke.trial import require_trials_scope
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("InvokeController",)


async def _sse(events: PeekedStream[StreamEvent]) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                if isinstance(event, InvokeResponse):
                    yield sse_event(event, "summary")
                else:
                    yield sse_event({"text": event}, "delta")
        except TriviumError as exc:
            yield problem_event(exc)


class InvokeController(Controller):
    path = "/v1/features"
    tags = ["invoke"]

    @post(
        "/{feature:str}/invoke",
        status_code=HTTP_200_OK,
        summary="Run a feature's request down the road its policy picks",
        description=(
            "With `stream: true` the answer arrives as server-sent events: `delta` events "
            "`{text}`, then one `summary` event (the JSON answer), or an `error` event. "
            "`trial` (a trial's case: `{id, arm}`) forces the arm and needs the `trials` scope "
            "as well (403 naming `trial`, in every auth mode); an arm the feature cannot take "
            "is a 400 naming `trial.arm`. Trial traffic skips the response cache and shadows, "
            'is labelled `traffic="trial"` in metrics and stays out of `/v1/stats`. '
            "A feature with `on_fail: hold` answers a poorly grounded request 202: verdict "
            "`held`, `output: null` and a `review_id`; `GET /v1/reviews/{id}` gives the "
            "answer once a reviewer decides (a stream ends with that summary)."
        ),
        security=scoped("invoke"),
        responses={
            HTTP_200_OK: ResponseSpec(InvokeResponse, description="the answer"),
            HTTP_202_ACCEPTED: ResponseSpec(
                InvokeResponse,
                description="held for a reviewer (`on_fail: hold`): `review_id`, no output",
            ),
            **native_errors(400, 404, 413, 429, 502, 503, 504),
        },
    )
    async def invoke(
        self, request: Request[Any, Any, Any], feature: str, data: InvokeRequest
    ) -> Response[InvokeResponse] | EventStream:
        here = serving(request)
        authorization = request.headers.get("authorization")
        caller = await here.authenticator.for_feature(authorization, feature)
        if data.trial is not None:
            await require_trials_scope(here.authenticator, authorization, caller)
        invoker = here.invoker
        call = invoker.resolve(feature, data, here.policies.current, REQUEST_ID.get() or "", caller)
        if not data.stream:
            answer = await invoker.invoke(call)
            held = answer.review_id is not None and answer.verdict == "held"  # trials: 200
            status = HTTP_202_ACCEPTED if held else HTTP_200_OK
            return Response(answer, status_code=status, headers=call.rate_limit_headers())
        events = await start_stream(invoker.stream(call))
        return EventStream(_sse(events), call.rate_limit_headers())
