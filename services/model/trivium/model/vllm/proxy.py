"""The OpenAI routes on the vLLM engine: validate, pick vLLM's model name, relay, measure."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_200_OK

from trivium.common.errors import TriviumError
from trivium.common.http.openai_errors import openai_error_chunk
from trivium.model.adapters.manager import AdapterManager
from trivium.model.openai.metrics import LATENCY, REQUESTS, TOKENS
from trivium.model.openai.protocol import ChatCompletionRequest, CompletionRequest, ModelList
from trivium.model.openai.routes import COMPLETION_ERRORS, EventStream, model_list
from trivium.model.vllm.client import UpstreamResponse, rewrite_model
from trivium.model.vllm.engine import VllmEngine

__all__ = ("VllmOpenAIController",)

log = logging.getLogger(__name__)
_FORWARDED_HEADERS = ("x-request-id",)


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Answer(msgspec.Struct):
    usage: _Usage | None = None


class VllmProxy:
    def __init__(self, engine: VllmEngine, adapters: AdapterManager) -> None:
        self.engine = engine
        self.adapters = adapters

    async def forward(
        self,
        request: Request[Any, Any, Any],
        path: str,
        data: ChatCompletionRequest | CompletionRequest,
    ) -> Response[Any] | EventStream:
        data.stop_sequences()
        started = time.monotonic()
        adapter = await self.adapters.resolve(data.model)
        metric_model = adapter.split("@", 1)[0] if adapter else "base"
        endpoint = "chat" if path.endswith("chat/completions") else "completions"
        body = rewrite_model(await request.body(), adapter or self.engine.served_name)
        headers = {h: request.headers[h] for h in _FORWARDED_HEADERS if h in request.headers}
        upstream = await self.engine.client.forward(path, body, headers)
        if upstream.status_code == 404 and adapter is not None:
            self.adapters.changed.set()  # vLLM lost the adapter (a restart): resync now
        if upstream.is_event_stream and upstream.status_code == HTTP_200_OK:
            return EventStream(self._relay(upstream, metric_model, endpoint, started))
        try:
            content = await upstream.read()
        finally:
            await upstream.aclose()
        if upstream.status_code != HTTP_200_OK:
            REQUESTS.labels(metric_model, endpoint, f"upstream_{upstream.status_code}").inc()
            return Response(
                content, status_code=upstream.status_code, media_type="application/json"
            )
        answer = msgspec.json.decode(content)
        answer["model"] = data.model  # callers see the name they asked for
        usage = msgspec.convert(answer, _Answer).usage or _Usage()
        self._account(metric_model, endpoint, started, usage)
        return Response(answer, status_code=HTTP_200_OK)

    async def _relay(
        self, upstream: UpstreamResponse, metric_model: str, endpoint: str, started: float
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.body():
                yield chunk
        except TriviumError as exc:  # the status is sent: report in-band, then end
            REQUESTS.labels(metric_model, endpoint, exc.code).inc()
            yield openai_error_chunk(exc)
            yield b"data: [DONE]\n\n"
            return
        finally:
            await upstream.aclose()
        self._account(metric_model, endpoint, started, _Usage())

    @staticmethod
    def _account(model: str, endpoint: str, started: float, usage: _Usage) -> None:
        TOKENS.labels(model, "prompt").inc(usage.prompt_tokens)
        TOKENS.labels(model, "completion").inc(usage.completion_tokens)
        LATENCY.labels(model).observe(time.monotonic() - started)
        REQUESTS.labels(model, endpoint, "ok").inc()


class VllmOpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]

    @post("/chat/completions", status_code=HTTP_200_OK, responses=COMPLETION_ERRORS)
    async def chat_completions(
        self, request: Request[Any, Any, Any], proxy: VllmProxy, data: ChatCompletionRequest
    ) -> Response[Any] | EventStream:
        return await proxy.forward(request, "/v1/chat/completions", data)

    @post("/completions", status_code=HTTP_200_OK, responses=COMPLETION_ERRORS)
    async def completions(
        self, request: Request[Any, Any, Any], proxy: VllmProxy, data: CompletionRequest
    ) -> Response[Any] | EventStream:
        return await proxy.forward(request, "/v1/completions", data)

    @get("/models")
    async def models(self, adapters: AdapterManager) -> ModelList:
        return model_list(adapters)
