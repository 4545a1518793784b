"""HTTP: OpenAI-compatible `POST /v1/chat/completions`, where `model` names a feature.

The official `openai` client works unchanged; what the gateway knows beyond the protocol
(route, variant, citations, timings, lineage) travels in the extension member `trivium`.
Errors use OpenAI's `{"error": {...}}` body so the client raises its usual exceptions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_200_OK

from trivium.common.errors import InvalidInputError, TriviumError
from trivium.common.http.openai_errors import OPENAI_EXCEPTION_HANDLERS, openai_error_chunk
from trivium.common.logs import REQUEST_ID
from trivium.gateway.invoke.pipeline import StreamEvent
from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse, Message
from trivium.gateway.invoke.serving import serving
from trivium.gateway.invoke.sse import EventStream, PeekedStream, start_stream
from trivium.gateway.policy import LoadedPolicy
from trivium.gateway.route_docs import openai_errors, scoped

__all__ = ("UNSUPPORTED_PARAMS", "ChatCompletionsController", "ChatRequest", "list_models")

_ENCODER = msgspec.json.Encoder()


class ContentPart(msgspec.Struct):
    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart]

    def text(self, index: int) -> str:
        if isinstance(self.content, str):
            return self.content
        if any(part.type != "text" or part.text is None for part in self.content):
            raise InvalidInputError(
                "only text content parts are supported", field=f"messages[{index}].content"
            )
        return "".join(part.text or "" for part in self.content)


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


UNSUPPORTED_PARAMS: dict[str, Any] = {
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "parallel_tool_calls": None,
    "response_format": {"type": "text"},
    "logprobs": False,
    "top_logprobs": None,
    "audio": None,
    "modalities": ["text"],
    "prediction": None,
    "logit_bias": None,
    "seed": None,
    "stop": None,
    "top_p": None,
    "frequency_penalty": None,
    "presence_penalty": None,
    "reasoning_effort": None,
    "web_search_options": None,
}
"""OpenAI parameters a feature cannot honour, with the one value that changes nothing: a
caller that sends another value (tools it expects to be called, a JSON format, a seed) gets
a 400 naming the parameter instead of an answer that silently ignored it."""


class ChatRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """OpenAI's chat request, plus the extensions `input` (template variables instead of a
    chat) and `session`. Unknown fields are refused, naming the field; `store`,
    `service_tier` and `metadata` are accepted (metadata travels with the request)."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1, max_length=256)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=32_768)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=32_768)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    n: int = 1
    user: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    session: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    input: dict[str, Any] | None = None
    metadata: Annotated[dict[str, str], msgspec.Meta(max_length=32)] | None = None
    store: bool | None = None
    service_tier: str | None = None
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    parallel_tool_calls: Any = None
    response_format: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    audio: Any = None
    modalities: Any = None
    prediction: Any = None
    logit_bias: Any = None
    seed: Any = None
    stop: Any = None
    top_p: Any = None
    frequency_penalty: Any = None
    presence_penalty: Any = None
    reasoning_effort: Any = None
    web_search_options: Any = None

    def to_invoke(self) -> InvokeRequest:
        if self.n != 1:
            raise InvalidInputError("only n=1 is supported", field="n")
        for name, harmless in UNSUPPORTED_PARAMS.items():
            value = getattr(self, name)
            if value is not None and value != harmless:
                raise InvalidInputError(
                    f"{name} is not supported: a feature answers with its own road's text",
                    field=name,
                )
        messages = [
            Message(role=message.role, content=message.text(i))
            for i, message in enumerate(self.messages)
        ]
        return InvokeRequest(
            input=self.input,
            messages=None if self.input is not None else messages,
            user=self.user or None,
            session=self.session or None,
            stream=self.stream,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            metadata=self.metadata or {},
        )


def _extension(answer: InvokeResponse) -> dict[str, Any]:
    extension: dict[str, Any] = {
        "feature": answer.feature,
        "route": answer.route,
        "variant": answer.variant,
        "template": answer.template,
        "adapter": answer.adapter,
        "citations": answer.citations,
        "cost_usd": answer.cost_usd,
        "timings_ms": answer.timings_ms,
        "lineage": answer.lineage,
        "fallback": answer.fallback,
        "groundedness": answer.groundedness,
        "verdict": answer.verdict,
        "needs_review": answer.needs_review,
        "review_id": answer.review_id,
        "cached": answer.cached,
    }
    if answer.semantic_cache is not msgspec.UNSET:
        extension["semantic_cache"] = answer.semantic_cache
    return extension


def _finish_reason(answer: InvokeResponse) -> str:
    return "content_filter" if answer.output is None else answer.finish_reason or "stop"


def _usage(answer: InvokeResponse) -> dict[str, int]:
    usage = answer.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _completion(answer: InvokeResponse, model: str) -> dict[str, Any]:
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.output},
                "finish_reason": _finish_reason(answer),
            }
        ],
        "usage": _usage(answer),
        "trivium": _extension(answer),
    }


async def _chunks(
    events: PeekedStream[StreamEvent], model: str, answer_id: str, include_usage: bool
) -> AsyncIterator[bytes]:
    base = {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(extra: dict[str, Any]) -> bytes:
        return b"data: " + _ENCODER.encode({**base, **extra}) + b"\n\n"

    first = True
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                if isinstance(event, InvokeResponse):
                    yield chunk(
                        {
                            "choices": [
                                {"index": 0, "delta": {}, "finish_reason": _finish_reason(event)}
                            ],
                            "trivium": _extension(event),
                        }
                    )
                    if include_usage:
                        yield chunk({"choices": [], "usage": _usage(event)})
                    continue
                delta: dict[str, str] = {"content": event}
                if first:
                    delta["role"], first = "assistant", False
                yield chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            yield b"data: [DONE]\n\n"
        except TriviumError as exc:
            yield openai_error_chunk(exc)


class ChatCompletionsController(Controller):
    path = "/v1/chat/completions"
    tags = ["openai"]
    exception_handlers = OPENAI_EXCEPTION_HANDLERS

    @post(
        status_code=HTTP_200_OK,
        summary="OpenAI-compatible chat completions; `model` is the feature's name",
        security=scoped("invoke"),
        responses=openai_errors(400, 404, 413, 429, 502, 503, 504),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: ChatRequest
    ) -> Response[bytes] | EventStream:
        here = serving(request)
        invoker = here.invoker
        try:
            caller = await here.authenticator.for_feature(
                request.headers.get("authorization"), data.model
            )
            call = invoker.resolve(
                data.model, data.to_invoke(), here.policies.current, REQUEST_ID.get() or "", caller
            )
        except TriviumError as exc:
            if exc.field == "feature":
                exc.field = "model"
            raise
        if not data.stream:
            answer = await invoker.invoke(call)
            return Response(
                _ENCODER.encode(_completion(answer, data.model)),
                media_type="application/json",
                headers=call.rate_limit_headers(),
            )
        events = await start_stream(invoker.stream(call))
        include_usage = data.stream_options is not None and data.stream_options.include_usage
        return EventStream(
            _chunks(events, data.model, call.answer_id, include_usage), call.rate_limit_headers()
        )


@get(
    "/v1/models",
    tags=["openai"],
    exception_handlers=OPENAI_EXCEPTION_HANDLERS,
    summary="The features this key may call, as OpenAI models",
    security=scoped("invoke"),
    responses=openai_errors(),
)
async def list_models(request: Request[Any, Any, Any], policy: LoadedPolicy) -> dict[str, Any]:
    here = serving(request)
    caller = await here.authenticator.for_models(request.headers.get("authorization"))
    created = int(policy.loaded_at)
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "trivium"}
            for name in sorted(policy.policy.features)
            if caller.allows_feature(name)
        ],
    }
