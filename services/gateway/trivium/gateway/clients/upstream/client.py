"""One pooled aiohttp client per OpenAI-compatible upstream: `POST {url}/chat/completions`.

Retries connect errors, 429 and 502/503 (streams: before any of the body was read) with
full-jitter backoff or the upstream's Retry-After, never past the caller's deadline. Every
attempt passes the upstream's gate first (circuit breaker, adaptive concurrency limit) and
reports its outcome back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncGenerator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import msgspec

from trivium.gateway.clients.breaker import CircuitBreaker
from trivium.gateway.clients.upstream.errors import UpstreamError, UpstreamErrorKind
from trivium.gateway.clients.upstream.gate import Attempt, UpstreamGate
from trivium.gateway.clients.upstream.limit import AdaptiveLimit
from trivium.gateway.clients.upstream.metrics import RetryReason, UpstreamMetrics
from trivium.gateway.config import UpstreamClientSection
from trivium.gateway.policy.model import Upstream

__all__ = ("ChatResult", "ChatUsage", "StreamDelta", "StreamEnd", "UpstreamClient")

log = logging.getLogger(__name__)

_NO_CEIL = 1e9
"""aiohttp rounds timeouts over this up to whole seconds; deadlines should not move."""
_DRAIN_S = 0.1
"""After `[DONE]`, how long to wait for the end of the body so the connection is reused."""


class ChatUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int


class ChatResult(msgspec.Struct, frozen=True):
    text: str
    finish_reason: str | None
    usage: ChatUsage
    model: str
    attempts: int


class StreamDelta(msgspec.Struct, frozen=True):
    text: str


class StreamEnd(msgspec.Struct, frozen=True):
    finish_reason: str | None
    usage: ChatUsage | None
    model: str
    attempts: int


_NO_USAGE = ChatUsage(0, 0)


# -- what is read of the upstream's answers (unknown fields are skipped) ----------------


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    model: str = ""
    usage: ChatUsage | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _ErrorInfo(msgspec.Struct):
    message: str = ""


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    model: str = ""
    usage: ChatUsage | None = None
    error: _ErrorInfo | None = None


class _Tally:
    """What a stream's chunks said besides their text."""

    __slots__ = ("finish_reason", "model", "usage")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: ChatUsage | None = None
        self.model = ""

    def add(self, chunk: _Chunk) -> str | None:
        """Note `chunk`'s model, usage and finish reason; return its text."""
        if chunk.model:
            self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
        return choice.delta.content if choice.delta is not None else None


_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_encode = msgspec.json.Encoder().encode


class UpstreamClient:
    """Chat completions against one upstream; the aiohttp session opens on first use."""

    def __init__(self, name: str, upstream: Upstream, options: UpstreamClientSection) -> None:
        self.name = name
        self.upstream = upstream
        self.options = options
        self.metrics = UpstreamMetrics(name)
        self.gate = UpstreamGate(name, options, self.metrics)
        self._url = upstream.url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if upstream.api_key_env:
            key = os.environ.get(upstream.api_key_env)
            if key:
                self._headers["Authorization"] = f"Bearer {key}"
            else:
                log.warning(
                    "upstream %s: environment variable %s is not set; calling without a key",
                    name,
                    upstream.api_key_env,
                    extra={"upstream": name, "api_key_env": upstream.api_key_env},
                )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def breaker(self) -> CircuitBreaker:
        return self.gate.breaker

    @property
    def concurrency(self) -> AdaptiveLimit:
        return self.gate.limit

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The pooled session, once a call has opened it."""
        return self._session

    async def chat(
        self, body: dict[str, Any], *, deadline: float, request_id: str | None = None
    ) -> ChatResult:
        """One chat completion; raises `UpstreamError` once retries are spent or not allowed."""
        payload = _encode({"model": self.upstream.model, **body, "stream": False})
        headers = None if request_id is None else {"X-Request-ID": request_id}
        gate = self.gate
        attempt = 0
        while True:
            attempt += 1
            admitted = gate.admit(deadline)
            try:
                result = await self._chat_attempt(
                    payload, headers, self._timeouts(deadline), deadline, attempt
                )
            except UpstreamError as error:
                gate.failed(admitted, error)
                await self._backoff(error, attempt, deadline)
                continue
            except BaseException:
                gate.abandoned(admitted)
                raise
            gate.succeeded(admitted)
            return result

    async def stream(
        self, body: dict[str, Any], *, deadline: float, request_id: str | None = None
    ) -> AsyncGenerator[StreamDelta | StreamEnd, None]:
        """Deltas of a streamed chat completion, then exactly one `StreamEnd`.

        Close the generator (`contextlib.aclosing`) to abandon it: that drops the connection.
        """
        payload = _encode(
            {
                "model": self.upstream.model,
                **body,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        headers = None if request_id is None else {"X-Request-ID": request_id}
        gate = self.gate
        attempt = 0
        admitted: Attempt
        while True:
            attempt += 1
            admitted = gate.admit(deadline)
            try:
                response = await self._send(payload, headers, self._timeouts(deadline), deadline)
                if not 200 <= response.status < 300:
                    raise await self._status_error(response)
            except UpstreamError as error:
                gate.failed(admitted, error)
                await self._backoff(error, attempt, deadline)
                continue
            except BaseException:
                gate.abandoned(admitted)
                raise
            break
        try:
            async with contextlib.aclosing(self._read_stream(response, attempt)) as items:
                async for item in items:
                    if isinstance(item, StreamEnd):
                        gate.succeeded(admitted)
                    yield item
        except UpstreamError as error:
            gate.failed(admitted, error)
            raise
        finally:
            gate.abandoned(admitted)  # no-op once a verdict is in
            response.close()

    async def aclose(self) -> None:
        """Close the pool; later calls fail with kind `connect`."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- one attempt ----------------------------------------------------------------------

    def _timeouts(self, deadline: float) -> aiohttp.ClientTimeout:
        """An attempt's timeouts: the upstream's, cut short by the deadline."""
        left = max(deadline - time.monotonic(), 0.001)
        upstream = self.upstream
        return aiohttp.ClientTimeout(
            total=left,
            sock_connect=min(upstream.connect_timeout_s, left),
            sock_read=min(upstream.read_timeout_s, left),
            ceil_threshold=_NO_CEIL,
        )

    async def _chat_attempt(
        self,
        payload: bytes,
        headers: Mapping[str, str] | None,
        timeouts: aiohttp.ClientTimeout,
        deadline: float,
        attempt: int,
    ) -> ChatResult:
        response = await self._send(payload, headers, timeouts, deadline)
        try:
            raw = await response.read()
        except TimeoutError:
            raise self._error("timeout", "no answer before the read timeout") from None
        except aiohttp.ClientError as exc:
            raise self._error("protocol", f"reading the answer: {_describe(exc)}") from None
        finally:
            response.close()
        if not 200 <= response.status < 300:
            raise self._status_error_from(response.status, response.headers, raw)
        try:
            completion = _decode_completion(raw)
        except msgspec.DecodeError as exc:
            raise self._error("protocol", f"unreadable completion: {exc}") from None
        if not completion.choices:
            raise self._error("protocol", "completion without choices")
        choice = completion.choices[0]
        return ChatResult(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            usage=completion.usage or _NO_USAGE,
            model=completion.model or self.upstream.model,
            attempts=attempt,
        )

    async def _send(
        self,
        payload: bytes,
        headers: Mapping[str, str] | None,
        timeouts: aiohttp.ClientTimeout,
        deadline: float,
    ) -> aiohttp.ClientResponse:
        """POST the request; return the response once its status line and headers are in."""
        session = self._session or self._open()
        try:
            return await session.post(self._url, data=payload, headers=headers, timeout=timeouts)
        except aiohttp.ConnectionTimeoutError:
            if time.monotonic() >= deadline:  # waited for a free pooled connection until then
                raise self._error("timeout", "no connection before the deadline") from None
            raise self._error("connect", "connect timeout") from None
        except TimeoutError:
            raise self._error("timeout", "no answer before the read timeout") from None
        except aiohttp.ClientConnectionError as exc:
            raise self._error("connect", _describe(exc)) from None
        except aiohttp.ClientError as exc:
            raise self._error("protocol", _describe(exc)) from None

    async def _read_stream(
        self, response: aiohttp.ClientResponse, attempt: int
    ) -> AsyncGenerator[StreamDelta | StreamEnd, None]:
        tally = _Tally()
        content = response.content
        try:
            while True:
                line = await content.readline()
                if not line:
                    raise self._error("protocol", "stream ended without [DONE]")
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, event names
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = _decode_chunk(data)
                if chunk.error is not None:
                    raise self._error("server_error", chunk.error.message or "error in stream")
                text = tally.add(chunk)
                if text:
                    yield StreamDelta(text)
            if not content.at_eof():
                await self._drain(response)
        except TimeoutError:
            raise self._error("timeout", "stream stalled past the read timeout") from None
        except msgspec.DecodeError as exc:
            raise self._error("protocol", f"unreadable stream chunk: {exc}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise self._error("protocol", f"reading the stream: {_describe(exc)}") from None
        model = tally.model or self.upstream.model
        yield StreamEnd(tally.finish_reason, tally.usage, model, attempt)

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse) -> None:
        """Read the rest of a finished stream's body, so the connection goes back to the pool."""
        try:
            async with asyncio.timeout(_DRAIN_S):
                await response.content.read()
        except (TimeoutError, aiohttp.ClientError):
            response.close()

    # -- outcomes -------------------------------------------------------------------------

    async def _backoff(self, error: UpstreamError, attempt: int, deadline: float) -> None:
        """Sleep before the next attempt, or raise `error` when it may not be retried."""
        reason = _retry_reason(error)
        if reason is None or attempt > self.options.max_retries:
            raise error
        if error.retry_after_s is not None:
            delay = error.retry_after_s
        else:
            options = self.options
            delay = random.uniform(
                0.0, min(options.backoff_max_s, options.backoff_base_s * 2 ** (attempt - 1))
            )
        if time.monotonic() + delay >= deadline:
            raise error
        self.metrics.retries[reason].inc()
        await asyncio.sleep(delay)

    async def _status_error(self, response: aiohttp.ClientResponse) -> UpstreamError:
        try:
            raw = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        finally:
            response.close()
        return self._status_error_from(response.status, response.headers, raw)

    def _status_error_from(
        self, status: int, headers: Mapping[str, str], raw: bytes
    ) -> UpstreamError:
        kind: UpstreamErrorKind
        if status == 429:
            kind = "rate_limited"
        elif status == 503:
            kind = "backpressure"
        elif status >= 500:
            kind = "server_error"
        elif status >= 400:
            kind = "client_error"
        else:
            kind = "protocol"
        return UpstreamError(
            self.name,
            kind,
            _error_message(raw) or f"HTTP {status}",
            status=status,
            retry_after_s=_retry_after(headers.get("Retry-After")),
        )

    def _error(self, kind: UpstreamErrorKind, message: str) -> UpstreamError:
        return UpstreamError(self.name, kind, message)

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise self._error("connect", "client closed (upstream reconfigured, or stopping)")
        connector = aiohttp.TCPConnector(
            limit=self.options.max_connections, limit_per_host=0, timeout_ceil_threshold=_NO_CEIL
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _retry_reason(error: UpstreamError) -> RetryReason | None:
    if error.kind == "connect":
        return "connect"
    if error.kind == "rate_limited":
        return "rate_limited"
    if error.status in (502, 503):
        return "unavailable"
    return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _error_message(raw: bytes) -> str:
    """The message of an OpenAI error body (`{"error": {"message": ...}}`), else the text."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw[:300].decode(errors="replace").strip()
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return raw[:300].decode(errors="replace").strip()
