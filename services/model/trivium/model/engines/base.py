"""What the OpenAI routes need from an engine, whichever engine it is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Literal, Protocol

import msgspec

__all__ = (
    "AdapterHost",
    "ChatMessage",
    "Engine",
    "FinishReason",
    "GenerationRequest",
    "GenerationStep",
    "SamplingParams",
)

FinishReason = Literal["stop", "length"]


class ChatMessage(msgspec.Struct, frozen=True):
    role: str
    content: str


class SamplingParams(msgspec.Struct, frozen=True):
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False


class GenerationRequest(msgspec.Struct, frozen=True):
    """One prompt for one model: `adapter` is an engine adapter id (`name@version`) or None."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None = None
    deadline: float | None = None
    """time.monotonic() after which the request is abandoned."""


class GenerationStep(msgspec.Struct, frozen=True):
    """New text for one request; the last step carries `finish_reason` and the token counts."""

    text: str
    completion_tokens: int
    finish_reason: FinishReason | None = None


class AdapterHost(Protocol):
    """Something that holds LoRA adapters by id (`name@version`): an engine, or vLLM."""

    async def load_adapter(self, adapter_id: str, path: Path) -> None: ...

    async def unload_adapter(self, adapter_id: str) -> None: ...

    def loaded_adapters(self) -> frozenset[str]: ...

    async def sync_adapters(self, wanted: Mapping[str, Path]) -> None:
        """Make the loaded adapters exactly `wanted` (id -> directory); log, don't raise."""
        ...


class Engine(AdapterHost, Protocol):
    """A base model plus hot-loadable LoRA adapters, generating token by token."""

    @property
    def context_window(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def encode_prompt(self, prompt: str) -> list[int]: ...

    def render_chat(self, messages: list[ChatMessage]) -> str: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationStep]:
        """Stream steps; may raise QueueFullError or DeadlineExceededError."""
        ...
