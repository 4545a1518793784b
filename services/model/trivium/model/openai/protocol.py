"""OpenAI wire structs. Requests accept unknown fields (clients send many); values are checked."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from trivium.common.errors import InvalidInputError

__all__ = (
    "ChatChoice",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatMessageIn",
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResponse",
    "ModelCard",
    "ModelList",
    "TextPart",
    "Usage",
)

Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
TopP = Annotated[float, msgspec.Meta(gt=0, le=1)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=32_768)]
StopSequence = Annotated[str, msgspec.Meta(min_length=1)]
Prompt = Annotated[str, msgspec.Meta(min_length=1)]
Stop = StopSequence | Annotated[list[StopSequence], msgspec.Meta(max_length=4)]


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Sampling(msgspec.Struct, kw_only=True):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    stop: Stop | None = None
    """Up to 4 non-empty sequences."""
    seed: int | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] = 1
    """Only one choice per request."""
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    ignore_eos: bool = False
    """vLLM's extension: keep generating past end-of-sequence (benchmarks, fixed lengths)."""

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def stop_sequences(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise InvalidInputError("stop: up to 4 non-empty sequences", field="stop")
        return tuple(stops)

    def token_budget(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class TextPart(msgspec.Struct):
    """A content part; only text is supported."""

    type: Literal["text"]
    text: str


class ChatMessageIn(msgspec.Struct):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Sampling, kw_only=True):
    messages: Annotated[list[ChatMessageIn], msgspec.Meta(min_length=1)]


class CompletionRequest(_Sampling, kw_only=True):
    prompt: Prompt | Annotated[list[Prompt], msgspec.Meta(min_length=1, max_length=1)]
    """One prompt per request."""
    echo: bool = False

    def single_prompt(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) == 1:
            return self.prompt[0]
        raise InvalidInputError("exactly one prompt per request is supported", field="prompt")


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessageOut(msgspec.Struct):
    role: str
    content: str


class ChatChoice(msgspec.Struct):
    index: int
    message: ChatMessageOut
    finish_reason: str | None


class ChatCompletionResponse(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    object: str = "chat.completion"


class CompletionChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None


class CompletionResponse(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    object: str = "text_completion"


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "trivium"
    root: str | None = None
    parent: str | None = None
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"
