"""Serving chat and text completions on an engine: validation, prompts, usage, SSE streaming."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from trivium.common.errors import InvalidInputError, TriviumError
from trivium.common.http.openai_errors import openai_error_chunk
from trivium.model.adapters.manager import AdapterManager
from trivium.model.engines.base import ChatMessage, Engine, GenerationRequest, SamplingParams
from trivium.model.errors import ContextLengthError
from trivium.model.openai.metrics import LATENCY, REQUESTS, TIME_TO_FIRST_TOKEN, TOKENS
from trivium.model.openai.protocol import (
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessageOut,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Usage,
)

__all__ = ("OpenAIServing", "Prepared")

_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready for the engine."""

    request_id: str
    model: str
    metric_model: str
    endpoint: str
    generation: GenerationRequest
    started: float


class OpenAIServing:
    def __init__(self, engine: Engine, adapters: AdapterManager, request_timeout_s: float) -> None:
        self.engine = engine
        self.adapters = adapters
        self.request_timeout_s = request_timeout_s

    async def prepare_chat(self, request: ChatCompletionRequest) -> Prepared:
        messages = [ChatMessage(m.role, m.text()) for m in request.messages]
        return await self._prepare(request, self.engine.render_chat(messages), "chat")

    async def prepare_completion(self, request: CompletionRequest) -> Prepared:
        return await self._prepare(request, request.single_prompt(), "completions")

    async def _prepare(
        self, request: ChatCompletionRequest | CompletionRequest, prompt: str, endpoint: str
    ) -> Prepared:
        started = time.monotonic()
        stops = request.stop_sequences()
        adapter = await self.adapters.resolve(request.model)
        prompt_ids = self.engine.encode_prompt(prompt)
        if not prompt_ids:
            raise InvalidInputError(
                "the prompt is empty", field="messages" if endpoint == "chat" else "prompt"
            )
        window = self.engine.context_window
        room = window - len(prompt_ids)
        max_tokens = request.token_budget(default=max(room, 0))
        if len(prompt_ids) + max_tokens > window or room <= 0:
            raise ContextLengthError(
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{len(prompt_ids) + max_tokens} tokens ({len(prompt_ids)} in the prompt, "
                f"{max_tokens} for the completion).",
                field="messages" if endpoint == "chat" else "prompt",
            )
        params = SamplingParams(
            max_tokens, request.temperature, request.top_p, stops, request.seed, request.ignore_eos
        )
        request_id = f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        generation = GenerationRequest(
            request_id, prompt_ids, params, adapter, started + self.request_timeout_s
        )
        metric_model = adapter.split("@", 1)[0] if adapter else "base"
        return Prepared(request_id, request.model, metric_model, endpoint, generation, started)

    async def collect(self, prepared: Prepared) -> tuple[str, str, Usage]:
        """Run to completion: text, finish reason, usage."""
        parts: list[str] = []
        finish = "length"
        tokens = 0
        first = True
        try:
            async for step in self.engine.generate(prepared.generation):
                if first and step.text:
                    TIME_TO_FIRST_TOKEN.labels(prepared.metric_model).observe(
                        time.monotonic() - prepared.started
                    )
                    first = False
                parts.append(step.text)
                tokens = step.completion_tokens
                if step.finish_reason is not None:
                    finish = step.finish_reason
        except TriviumError as exc:
            REQUESTS.labels(prepared.metric_model, prepared.endpoint, exc.code).inc()
            raise
        usage = self._account(prepared, tokens)
        return "".join(parts), finish, usage

    def _account(self, prepared: Prepared, completion_tokens: int) -> Usage:
        prompt_tokens = len(prepared.generation.prompt_ids)
        model = prepared.metric_model
        TOKENS.labels(model, "prompt").inc(prompt_tokens)
        TOKENS.labels(model, "completion").inc(completion_tokens)
        LATENCY.labels(model).observe(time.monotonic() - prepared.started)
        REQUESTS.labels(model, prepared.endpoint, "ok").inc()
        return Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)

    async def chat_response(self, prepared: Prepared) -> ChatCompletionResponse:
        text, finish, usage = await self.collect(prepared)
        choice = ChatChoice(0, ChatMessageOut("assistant", text), finish)
        return ChatCompletionResponse(
            prepared.request_id, int(time.time()), prepared.model, [choice], usage
        )

    async def completion_response(self, prepared: Prepared) -> CompletionResponse:
        text, finish, usage = await self.collect(prepared)
        choice = CompletionChoice(0, text, finish)
        return CompletionResponse(
            prepared.request_id, int(time.time()), prepared.model, [choice], usage
        )

    async def stream(self, prepared: Prepared, include_usage: bool) -> AsyncIterator[bytes]:
        """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`."""
        chat = prepared.endpoint == "chat"
        created = int(time.time())
        base = {"id": prepared.request_id, "created": created, "model": prepared.model}
        base["object"] = "chat.completion.chunk" if chat else "text_completion"
        tokens = 0
        first = True
        try:
            if chat:
                yield _event(
                    {**base, "choices": [_chat_delta({"role": "assistant", "content": ""})]}
                )
            async for step in self.engine.generate(prepared.generation):
                tokens = step.completion_tokens
                if first and step.text:
                    TIME_TO_FIRST_TOKEN.labels(prepared.metric_model).observe(
                        time.monotonic() - prepared.started
                    )
                    first = False
                if step.text or step.finish_reason:
                    choice = (
                        _chat_delta({"content": step.text} if step.text else {}, step.finish_reason)
                        if chat
                        else {
                            "index": 0,
                            "text": step.text,
                            "finish_reason": step.finish_reason,
                            "logprobs": None,
                        }
                    )
                    yield _event({**base, "choices": [choice]})
        except Exception as exc:  # the stream has started: report in-band, then end it
            code = exc.code if isinstance(exc, TriviumError) else "internal_error"
            REQUESTS.labels(prepared.metric_model, prepared.endpoint, code).inc()
            yield openai_error_chunk(exc)
            yield b"data: [DONE]\n\n"
            return
        usage = self._account(prepared, tokens)
        if include_usage:
            yield _event({**base, "choices": [], "usage": msgspec.to_builtins(usage)})
        yield b"data: [DONE]\n\n"


def _chat_delta(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


def _event(payload: object) -> bytes:
    return b"data: " + _json.encode(payload) + b"\n\n"
