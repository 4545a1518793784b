"""A real OpenAI-compatible chat server for tests and benchmarks, with faults on demand.

An aiohttp.web server on 127.0.0.1 in a background thread with its own event loop, so sync
tests, async tests and benchmark scripts can all use it::

    with OpenAIUpstream() as up:
        up.url  # "http://127.0.0.1:PORT/v1"
        up.fail_next(1, status=503)

It answers `POST /v1/chat/completions` (JSON, or SSE with `"stream": true`: a role chunk,
one chunk per word, a finish chunk, a usage chunk when `stream_options.include_usage`, then
`data: [DONE]`) and `GET /v1/models`. The default reply is `"echo: "` + the first 200
characters of the last user message; token counts are whitespace-separated words.

Faults are queued and served in order, one per chat request: `fail_next` (an error status),
`drop_next` (close the connection without answering), `hang_next` (never answer),
`cut_stream_next` (a stream that ends without `[DONE]`). `stop()` kills the server and
`start()` revives it on the same port. Every control is safe to call from any thread.
Nothing is logged per request.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

__all__ = ("OpenAIUpstream", "Received", "echo_reply", "word_count")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_PIECES = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Received:
    """A chat request as the server got it; header names are lower-cased."""

    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "drop", "hang", "cut"]
    status: int = 503
    retry_after: float | str | None = None
    body: bytes | str | None = None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def word_count(text: str) -> int:
    return len(text.split())


def echo_reply(body: dict[str, Any]) -> str:
    """`"echo: "` + the first 200 characters of the last user message."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return "echo: " + _text_of(message.get("content"))[:200]
    return "echo: "


class OpenAIUpstream:
    def __init__(
        self,
        *,
        model: str = "test-model",
        delay_s: float = 0.0,
        stream_delay_s: float = 0.0,
        reply: Callable[[dict[str, Any]], str] = echo_reply,
        record: bool = True,
    ) -> None:
        self.model = model
        self.delay_s = delay_s
        """Wait this long before answering a chat request."""
        self.stream_delay_s = stream_delay_s
        """Wait this long between stream chunks."""
        self.reply = reply
        self.record = record
        """Keep every request in `requests` (turn off for long benchmarks)."""
        self._defaults = (delay_s, stream_delay_s, reply)
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._received: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The OpenAI base URL, `/v1` included."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> OpenAIUpstream:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Start the background loop and the server."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="openai-upstream", daemon=True
        )
        self._thread.start()
        self.start()

    def close(self) -> None:
        """Stop the server and its loop."""
        if self._loop is None or self._thread is None:
            return
        self.stop()
        self._call(self._loop.shutdown_asyncgens())
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        loop.close()

    def start(self) -> None:
        """(Re)start serving, on the same port as before if there was one."""
        self._call(self._start())

    def stop(self) -> None:
        """Kill the server: close the listening socket and every open connection."""
        self._call(self._stop())

    @property
    def running(self) -> bool:
        return self._runner is not None

    # -- controls ---------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | str | None = None,
        body: bytes | str | None = None,
    ) -> None:
        """Answer the next `n` chat requests with `status` (an OpenAI error body by default)."""
        self._queue(n, _Fault("fail", status, retry_after, body))

    def drop_next(self, n: int = 1) -> None:
        """Close the connection of the next `n` chat requests without any response."""
        self._queue(n, _Fault("drop"))

    def hang_next(self, n: int = 1) -> None:
        """Never answer the next `n` chat requests (until the client disconnects)."""
        self._queue(n, _Fault("hang"))

    def cut_stream_next(self, n: int = 1) -> None:
        """End the next `n` streams after their first word, cleanly but without `[DONE]`."""
        self._queue(n, _Fault("cut"))

    @property
    def requests(self) -> list[Received]:
        """The chat requests received so far (faulted ones included), oldest first."""
        with self._lock:
            return list(self._received)

    def reset(self) -> None:
        """Forget requests and queued faults; delays and reply back to the constructor's."""
        with self._lock:
            self._faults.clear()
            self._received.clear()
        self.delay_s, self.stream_delay_s, self.reply = self._defaults

    def _queue(self, n: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * n)

    def _take_fault(self) -> _Fault | None:
        if not self._faults:
            return None
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _call(self, coro: Any) -> None:
        if self._loop is None:
            coro.close()
            raise RuntimeError("OpenAIUpstream is not open")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.05
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- handlers ---------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        body = {
            "object": "list",
            "data": [{"id": self.model, "object": "model", "owned_by": "trivium-tests"}],
        }
        return web.Response(body=_encode(body), content_type="application/json")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = _decode(raw)
            if not isinstance(body, dict):
                raise TypeError("not an object")
        except (msgspec.DecodeError, TypeError) as exc:
            return _error(400, f"invalid JSON body: {exc}")
        if self.record:
            received = Received(body, {k.lower(): v for k, v in request.headers.items()})
            with self._lock:
                self._received.append(received)
        fault = self._take_fault()
        if fault is not None and fault.kind != "cut":
            return await self._fault(request, fault)
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property")
        text, finish_reason = self._generate(body)
        usage = {
            "prompt_tokens": sum(
                word_count(_text_of(m.get("content")))
                for m in body["messages"]
                if isinstance(m, dict)
            ),
            "completion_tokens": word_count(text),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = str(body.get("model") or self.model)
        if body.get("stream"):
            return await self._stream(request, body, model, text, finish_reason, usage, fault)
        completion = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
        }
        return web.Response(body=_encode(completion), content_type="application/json")

    def _generate(self, body: dict[str, Any]) -> tuple[str, str]:
        text = self.reply(body)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and word_count(text) > limit:
            return " ".join(text.split()[:limit]), "length"
        return text, "stop"

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        model: str,
        text: str,
        finish_reason: str,
        usage: dict[str, int],
        fault: _Fault | None,
    ) -> web.StreamResponse:
        head = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def frame(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + _encode({**head, "choices": choices, **extra}) + b"\n\n"

        frames = [frame([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        frames += [
            frame([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            for piece in _PIECES.findall(text)
        ]
        if fault is not None:  # "cut": the first word, then the end of the body
            frames = frames[:2]
        else:
            frames.append(frame([{"index": 0, "delta": {}, "finish_reason": finish_reason}]))
            options = body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage"):
                frames.append(frame([], usage=usage))
            frames.append(b"data: [DONE]\n\n")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.stream_delay_s > 0:
            for data in frames:
                await response.write(data)
                await asyncio.sleep(self.stream_delay_s)
        else:
            await response.write(b"".join(frames))
        await response.write_eof()
        return response

    async def _fault(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.kind == "fail":
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            if fault.body is None:
                return _error(fault.status, f"injected failure ({fault.status})", headers)
            raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
            return web.Response(status=fault.status, body=raw, headers=headers)
        if fault.kind == "hang":
            await asyncio.sleep(3600)  # cancelled when the client disconnects or on stop()
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError  # nothing more to say on a dead connection


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    info: dict[str, Any] = {"message": message, "type": kind, "param": None, "code": status}
    return web.Response(
        status=status,
        body=_encode({"error": info}),
        content_type="application/json",
        headers=headers,
    )
