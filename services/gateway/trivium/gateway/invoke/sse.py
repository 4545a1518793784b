"""Server-sent events framing, and starting a stream so early failures keep their status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.response import Stream
from litestar.response.base import ASGIResponse

__all__ = ("EventStream", "PeekedStream", "sse_event", "start_stream")

T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()


def sse_event(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + _ENCODER.encode(data) + b"\n\n"


class PeekedStream(AsyncIterator[T]):
    """An async iterator whose first item was already taken (and is given back first)."""

    def __init__(self, first: T, rest: AsyncIterator[T]) -> None:
        self._first: list[T] = [first]
        self._rest = rest

    def __aiter__(self) -> PeekedStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._first:
            return self._first.pop()
        return await self._rest.__anext__()

    async def aclose(self) -> None:
        close = getattr(self._rest, "aclose", None)
        if close is not None:
            await close()


async def start_stream(events: AsyncIterator[T]) -> PeekedStream[T]:
    """Run `events` up to its first item here, so that a failure before anything was sent
    becomes an ordinary HTTP error response instead of a broken stream."""
    first = await events.__anext__()
    return PeekedStream(first, events)


class EventStream(Stream):
    """`text/event-stream` whatever the route's declared media type (Litestar would otherwise
    let a JSON route's default win over the response's own)."""

    def __init__(
        self, content: AsyncIterator[bytes], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        )

    def to_asgi_response(
        self, app: Any, request: Request[Any, Any, Any], **kwargs: Any
    ) -> ASGIResponse:
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(app, request, **kwargs)
