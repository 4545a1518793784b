"""The upstream client and pool against a real OpenAI-compatible server (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.support.openai_upstream import OpenAIUpstream
from trivium.gateway.clients.upstream import (
    StreamDelta,
    StreamEnd,
    UpstreamClient,
    UpstreamError,
    UpstreamPool,
)
from trivium.gateway.config import UpstreamClientSection
from trivium.gateway.policy.model import Upstream

BODY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "where is my parcel"},
    ],
    "max_tokens": 64,
}
FAST = UpstreamClientSection(
    max_retries=2, backoff_base_s=0.01, backoff_max_s=0.05, breaker_failures=50
)

MakeClient = Callable[..., UpstreamClient]


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture
async def make_client(upstream: OpenAIUpstream) -> AsyncIterator[MakeClient]:
    """Clients of `upstream` under a fresh name (so metrics start at zero), closed after."""
    clients: list[UpstreamClient] = []

    def make(options: UpstreamClientSection = FAST, **config: Any) -> UpstreamClient:
        config = {"url": upstream.url, "model": "test-model", **config}
        client = UpstreamClient(f"up-{uuid.uuid4().hex[:8]}", Upstream(**config), options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def state(client: UpstreamClient) -> str:
    return client.breaker.state


def has_session(client: UpstreamClient) -> bool:
    return client.session is not None


def within(seconds: float) -> float:
    return time.monotonic() + seconds


async def failure(call: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call
    return caught.value


# -- chat -----------------------------------------------------------------------------------


async def test_chat(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    client = make_client()
    result = await client.chat(BODY, deadline=within(5), request_id="req-1")
    assert result.text == "echo: where is my parcel"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (6, 5)
    assert result.model == "test-model"
    assert result.attempts == 1
    [received] = upstream.requests
    assert received.body["stream"] is False
    assert received.body["model"] == "test-model"
    assert received.headers["x-request-id"] == "req-1"
    assert "authorization" not in received.headers
    name = "trivium_upstream_duration_seconds_count"
    assert metric(name, upstream=client.name) == 1


async def test_caller_model_and_limits_pass_through(make_client: MakeClient) -> None:
    result = await make_client().chat(
        {**BODY, "model": "lora-7", "max_tokens": 2}, deadline=within(5)
    )
    assert (result.model, result.text, result.finish_reason) == ("lora-7", "echo: where", "length")


async def test_retries_503_then_succeeds(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    client = make_client()
    upstream.fail_next(1, status=503)
    result = await client.chat(BODY, deadline=within(5))
    assert result.attempts == 2
    assert len(upstream.requests) == 2
    labels = {"upstream": client.name}
    assert metric("trivium_upstream_retries_total", reason="unavailable", **labels) == 1
    assert metric("trivium_upstream_errors_total", kind="backpressure", **labels) == 1


async def test_retries_give_up_after_max_retries(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    upstream.fail_next(3, status=502)
    error = await failure(make_client().chat(BODY, deadline=within(5)))
    assert (error.kind, error.status, error.http_status) == ("server_error", 502, 502)
    assert len(upstream.requests) == 3


async def test_429_waits_for_retry_after(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    client = make_client()
    upstream.fail_next(1, status=429, retry_after=0.3)
    started = time.monotonic()
    result = await client.chat(BODY, deadline=within(5))
    assert time.monotonic() - started >= 0.3
    assert result.attempts == 2
    labels = {"upstream": client.name}
    assert metric("trivium_upstream_retries_total", reason="rate_limited", **labels) == 1


async def test_429_with_retry_after_past_the_deadline_gives_up_at_once(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    upstream.fail_next(1, status=429, retry_after=30)
    started = time.monotonic()
    error = await failure(make_client().chat(BODY, deadline=within(2)))
    assert time.monotonic() - started < 0.5
    assert (error.kind, error.status, error.retry_after_s) == ("rate_limited", 429, 30)
    assert error.http_status == 503
    assert len(upstream.requests) == 1


async def test_500_is_not_retried(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    upstream.fail_next(1, status=500)
    error = await failure(make_client().chat(BODY, deadline=within(5)))
    assert (error.kind, error.status, error.http_status) == ("server_error", 500, 502)
    assert len(upstream.requests) == 1


async def test_400_is_a_client_error_with_the_upstream_message(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    body = b'{"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}'
    upstream.fail_next(1, status=400, body=body)
    error = await failure(make_client().chat(BODY, deadline=within(5)))
    assert (error.kind, error.status) == ("client_error", 400)
    assert error.message == "max_tokens is too large"
    assert len(upstream.requests) == 1

    upstream.fail_next(1, status=404, body="no such model")
    error = await failure(make_client().chat(BODY, deadline=within(5)))
    assert (error.kind, error.message) == ("client_error", "no such model")


async def test_unreadable_answer_is_a_protocol_error(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    upstream.fail_next(1, status=200, body="<html>proxy error</html>")
    error = await failure(make_client().chat(BODY, deadline=within(5)))
    assert (error.kind, error.http_status) == ("protocol", 502)
    upstream.fail_next(1, status=200, body='{"model": "m", "choices": []}')
    error = await failure(make_client().chat(BODY, deadline=within(5)))
    assert error.kind == "protocol"


async def test_dropped_connection_is_retried(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client()
    upstream.drop_next(1)
    result = await client.chat(BODY, deadline=within(5))
    assert result.attempts == 2
    labels = {"upstream": client.name}
    assert metric("trivium_upstream_retries_total", reason="connect", **labels) == 1

    upstream.drop_next(3)
    error = await failure(client.chat(BODY, deadline=within(5)))
    assert (error.kind, error.http_status) == ("connect", 503)


async def test_hang_times_out_at_the_deadline(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    upstream.hang_next(1)
    started = time.monotonic()
    error = await failure(make_client().chat(BODY, deadline=started + 0.4))
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 0.6
    assert (error.kind, error.http_status) == ("timeout", 504)
    assert len(upstream.requests) == 1  # timeouts are never retried


async def test_read_timeout_shorter_than_the_deadline(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    upstream.hang_next(1)
    started = time.monotonic()
    error = await failure(make_client(read_timeout_s=0.2).chat(BODY, deadline=within(10)))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 0.4


async def test_waiting_for_a_pooled_connection_ends_at_the_deadline(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(UpstreamClientSection(max_connections=1))
    upstream.delay_s = 0.5
    busy = asyncio.create_task(client.chat(BODY, deadline=within(5)))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    error = await failure(client.chat(BODY, deadline=started + 0.2))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 0.4
    assert (await busy).attempts == 1


async def test_deadline_already_passed(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    error = await failure(make_client().chat(BODY, deadline=time.monotonic()))
    assert error.kind == "timeout"
    assert upstream.requests == []


async def test_api_key_from_the_environment(
    upstream: OpenAIUpstream,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TRIVIUM_TEST_UPSTREAM_KEY", "sk-test-123")
    await make_client(api_key_env="TRIVIUM_TEST_UPSTREAM_KEY").chat(BODY, deadline=within(5))
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-test-123"

    monkeypatch.delenv("TRIVIUM_TEST_UPSTREAM_KEY")
    with caplog.at_level(logging.WARNING, logger="trivium.gateway.clients.upstream.client"):
        client = make_client(api_key_env="TRIVIUM_TEST_UPSTREAM_KEY")
        await client.chat(BODY, deadline=within(5))
        await client.chat(BODY, deadline=within(5))
    assert [r.getMessage() for r in caplog.records if "TRIVIUM_TEST_UPSTREAM_KEY" in r.getMessage()]
    assert len(caplog.records) == 1
    assert "authorization" not in upstream.requests[-1].headers


# -- circuit breaker ------------------------------------------------------------------------


async def test_circuit_opens_refuses_and_closes_on_a_probe(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    options = UpstreamClientSection(max_retries=0, breaker_failures=3, breaker_open_s=0.5)
    client = make_client(options)
    gauge = "trivium_upstream_circuit_state"
    await client.chat(BODY, deadline=within(5))
    upstream.stop()
    for _ in range(3):
        assert (await failure(client.chat(BODY, deadline=within(5)))).kind == "connect"
    assert state(client) == "open"
    assert metric(gauge, upstream=client.name) == 2

    started = time.monotonic()
    error = await failure(client.chat(BODY, deadline=within(5)))
    assert time.monotonic() - started < 0.05
    assert error.kind == "circuit_open"
    assert error.retry_after_s is not None
    assert 0 < error.retry_after_s <= 0.5

    upstream.start()
    upstream.delay_s = 0.2
    await asyncio.sleep(0.5)
    probe = asyncio.create_task(client.chat(BODY, deadline=within(5)))
    await asyncio.sleep(0.05)
    assert state(client) == "half_open"
    assert metric(gauge, upstream=client.name) == 1
    assert (await failure(client.chat(BODY, deadline=within(5)))).kind == "circuit_open"
    assert (await probe).text == "echo: where is my parcel"
    assert state(client) == "closed"
    assert metric(gauge, upstream=client.name) == 0
    upstream.delay_s = 0.0
    await asyncio.gather(*(client.chat(BODY, deadline=within(5)) for _ in range(5)))


async def test_failed_probe_reopens(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    options = UpstreamClientSection(max_retries=0, breaker_failures=2, breaker_open_s=0.2)
    client = make_client(options)
    upstream.fail_next(3, status=500)
    for _ in range(2):
        await failure(client.chat(BODY, deadline=within(5)))
    await asyncio.sleep(0.2)
    assert (await failure(client.chat(BODY, deadline=within(5)))).kind == "server_error"
    assert state(client) == "open"


async def test_4xx_and_429_do_not_open_the_circuit(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(UpstreamClientSection(max_retries=0, breaker_failures=2))
    upstream.fail_next(3, status=400)
    upstream.fail_next(3, status=429)
    kinds = [(await failure(client.chat(BODY, deadline=within(5)))).kind for _ in range(6)]
    assert kinds == ["client_error"] * 3 + ["rate_limited"] * 3
    assert state(client) == "closed"


# -- streaming ------------------------------------------------------------------------------


async def collect(client: UpstreamClient, **kwargs: Any) -> list[StreamDelta | StreamEnd]:
    return [item async for item in client.stream(BODY, **kwargs)]


async def test_stream(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    items = await collect(make_client(), deadline=within(5), request_id="req-s")
    *deltas, end = items
    assert isinstance(end, StreamEnd)
    assert all(isinstance(d, StreamDelta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, StreamDelta)) == (
        "echo: where is my parcel"
    )
    assert end == StreamEnd(
        finish_reason="stop",
        usage=end.usage,
        model="test-model",
        attempts=1,
    )
    assert end.usage is not None
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (6, 5)
    [received] = upstream.requests
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}
    assert received.headers["x-request-id"] == "req-s"


async def test_stream_retries_before_the_body(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    upstream.fail_next(1, status=503)
    upstream.drop_next(1)
    *_, end = await collect(make_client(), deadline=within(5))
    assert isinstance(end, StreamEnd)
    assert end.attempts == 3


async def test_stream_errors(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    client = make_client()
    upstream.cut_stream_next(1)
    error = await failure(collect(client, deadline=within(5)))
    assert error.kind == "protocol"
    assert "[DONE]" in error.message

    upstream.fail_next(1, status=400)
    assert (await failure(collect(client, deadline=within(5)))).kind == "client_error"

    upstream.stream_delay_s = 0.15
    started = time.monotonic()
    error = await failure(collect(client, deadline=started + 0.4))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 0.6
    assert len(upstream.requests) == 3  # none retried


async def test_abandoned_streams_release_their_connection(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(UpstreamClientSection(max_connections=1))
    upstream.stream_delay_s = 0.05
    for _ in range(10):
        async with contextlib.aclosing(client.stream(BODY, deadline=within(2))) as stream:
            first = await anext(stream)
            assert isinstance(first, StreamDelta)
    upstream.stream_delay_s = 0.0
    for _ in range(3):  # finished streams hand their connection back for reuse
        await collect(client, deadline=within(2))
    assert (await client.chat(BODY, deadline=within(2))).attempts == 1
    assert has_session(client)
    assert len(upstream.requests) == 14


# -- pool -----------------------------------------------------------------------------------


async def test_pool_sync(upstream: OpenAIUpstream) -> None:
    pool = UpstreamPool(FAST, retire_after_s=0.3)
    a = Upstream(url=upstream.url, model="a")
    b = Upstream(url=upstream.url, model="b")
    try:
        pool.sync({"a": a, "b": b})
        client_a, client_b = pool.get("a"), pool.get("b")
        await client_b.chat(BODY, deadline=within(5))

        pool.sync({"a": Upstream(url=upstream.url, model="a"), "b": b})
        assert pool.get("a") is client_a
        assert pool.get("b") is client_b

        upstream.delay_s = 0.2
        in_flight = asyncio.create_task(client_b.chat(BODY, deadline=within(5)))
        await asyncio.sleep(0.05)
        pool.sync({"b": Upstream(url=upstream.url, model="b", read_timeout_s=5)})
        with pytest.raises(KeyError):
            pool.get("a")
        new_b = pool.get("b")
        assert new_b is not client_b
        assert new_b.upstream.read_timeout_s == 5

        assert (await in_flight).model == "b"  # the retired client finishes its request
        assert has_session(client_b)
        await asyncio.sleep(0.3)
        assert not has_session(client_b)
        assert (await failure(client_b.chat(BODY, deadline=within(5)))).kind == "connect"
        assert (await new_b.chat(BODY, deadline=within(5))).model == "b"
    finally:
        await pool.aclose()
    assert not has_session(new_b)
