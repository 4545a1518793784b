"""HTTP routes of the OpenAI-compatible API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from litestar import Controller, Request, get, post
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_200_OK

from trivium.common.http.openapi import openai_error_responses
from trivium.model.adapters.manager import AdapterManager
from trivium.model.openai.metrics import REQUESTS
from trivium.model.openai.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
)
from trivium.model.openai.serving import OpenAIServing, Prepared

__all__ = ("COMPLETION_ERRORS", "EventStream", "OpenAIController", "model_list")

T = TypeVar("T")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
COMPLETION_ERRORS = openai_error_responses(400, 404, 413, 503, 504)


class EventStream(Stream):
    """A text/event-stream response (the route's default JSON media type must not win)."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)


async def _until_disconnect(request: Request[Any, Any, Any]) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(
    request: Request[Any, Any, Any], prepared: Prepared, work: Awaitable[T]
) -> T:
    """Await `work`, cancelling it (and its engine slot) if the client goes away first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        REQUESTS.labels(prepared.metric_model, prepared.endpoint, "cancelled").inc()
        raise asyncio.CancelledError
    return task.result()


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]

    @post("/chat/completions", status_code=HTTP_200_OK, responses=COMPLETION_ERRORS)
    async def chat_completions(
        self, request: Request[Any, Any, Any], serving: OpenAIServing, data: ChatCompletionRequest
    ) -> ChatCompletionResponse | EventStream:
        prepared = await serving.prepare_chat(data)
        if data.stream:
            return EventStream(serving.stream(prepared, data.include_usage))
        return await _unless_disconnected(request, prepared, serving.chat_response(prepared))

    @post("/completions", status_code=HTTP_200_OK, responses=COMPLETION_ERRORS)
    async def completions(
        self, request: Request[Any, Any, Any], serving: OpenAIServing, data: CompletionRequest
    ) -> CompletionResponse | EventStream:
        prepared = await serving.prepare_completion(data)
        if data.stream:
            return EventStream(serving.stream(prepared, data.include_usage))
        return await _unless_disconnected(request, prepared, serving.completion_response(prepared))

    @get("/models")
    async def models(self, adapters: AdapterManager) -> ModelList:
        return model_list(adapters)


def model_list(adapters: AdapterManager) -> ModelList:
    """The base, each loaded adapter version, and each label alias of a loaded version."""
    created = int(time.time())
    cards = [ModelCard(adapters.base_name, created)]
    loaded = sorted(adapters.engine.loaded_adapters())
    cards += [ModelCard(a, created, root=a, parent=adapters.base_name) for a in loaded]
    for alias, target in sorted(adapters.aliases().items()):
        if target in loaded:
            cards.append(ModelCard(alias, created, root=target, parent=adapters.base_name))
    return ModelList(cards)
