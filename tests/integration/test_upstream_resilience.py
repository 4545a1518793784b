"""Staying up when an upstream hangs, recovers or pushes back, against real sockets.

Hangs count as failures when their deadline passes; a recovered upstream is readmitted
through half-open probes promptly; 503 and 429 are backpressure, which never opens the
circuit but shrinks the upstream's adaptive concurrency limit; calls beyond that limit are
shed at once as `overloaded`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.tcp_faults import SilentListener
from trivium.common.errors import UnavailableError
from trivium.gateway.clients.upstream import (
    StreamDelta,
    UpstreamClient,
    UpstreamError,
    UpstreamPool,
)
from trivium.gateway.config import UpstreamClientSection
from trivium.gateway.invoke.errors import OverloadedError, failure_error
from trivium.gateway.policy.model import Upstream

BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "where is my parcel"}]}

MakeClient = Callable[..., UpstreamClient]


def options(**overrides: Any) -> UpstreamClientSection:
    """No retries and a circuit that stays open for the test, unless overridden."""
    base: dict[str, Any] = {
        "max_retries": 0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "breaker_failures": 3,
        "breaker_open_s": 30.0,
    }
    return UpstreamClientSection(**{**base, **overrides})


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture
async def make_client(upstream: OpenAIUpstream) -> AsyncIterator[MakeClient]:
    clients: list[UpstreamClient] = []

    def make(
        section: UpstreamClientSection, url: str | None = None, **config: Any
    ) -> UpstreamClient:
        upstream_config = Upstream(url=url or upstream.url, model="test-model", **config)
        client = UpstreamClient(f"up-{uuid.uuid4().hex[:8]}", upstream_config, section)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def within(seconds: float) -> float:
    return time.monotonic() + seconds


async def failure(call: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call
    return caught.value


async def failures(*calls: Any) -> list[UpstreamError]:
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, UpstreamError) for outcome in outcomes), outcomes
    return [outcome for outcome in outcomes if isinstance(outcome, UpstreamError)]


def state(client: UpstreamClient) -> str:
    return client.breaker.state


# -- hangs ----------------------------------------------------------------------------------


async def test_a_hang_opens_the_circuit_at_the_deadline_not_after(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(options())
    upstream.hang_next(3)
    started = time.monotonic()
    errors = await failures(*(client.chat(BODY, deadline=started + 0.4) for _ in range(3)))
    elapsed = time.monotonic() - started
    assert [error.kind for error in errors] == ["timeout"] * 3
    assert 0.4 <= elapsed < 0.6
    assert state(client) == "open"  # at the deadline, while the upstream still hangs
    assert metric("trivium_upstream_circuit_state", upstream=client.name) == 2

    started = time.monotonic()
    refused = await failure(client.chat(BODY, deadline=within(5)))
    assert time.monotonic() - started < 0.05
    assert (refused.kind, refused.http_status) == ("circuit_open", 503)
    assert len(upstream.requests) == 3


async def test_a_silent_socket_opens_the_circuit_at_the_read_timeout(
    make_client: MakeClient,
) -> None:
    """A SIGSTOPped upstream: the kernel accepts, nothing ever answers."""
    with SilentListener() as silent:
        client = make_client(options(breaker_failures=2), url=silent.url, read_timeout_s=0.2)
        started = time.monotonic()
        for _ in range(2):
            assert (await failure(client.chat(BODY, deadline=started + 10))).kind == "timeout"
        assert time.monotonic() - started < 0.6  # two read timeouts, far from the deadline
        assert state(client) == "open"


async def test_a_cancelled_attempt_is_released_without_a_verdict(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(options(breaker_failures=1))
    upstream.hang_next(1)
    call = asyncio.create_task(client.chat(BODY, deadline=within(5)))
    await asyncio.sleep(0.1)
    assert client.concurrency.in_flight == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert state(client) == "closed"
    assert client.concurrency.in_flight == 0
    assert client.concurrency.limit == 32  # no verdict on the upstream's capacity either
    assert (await client.chat(BODY, deadline=within(5))).attempts == 1


async def test_a_recovered_upstream_is_readmitted_through_a_probe(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(options(breaker_failures=2, breaker_open_s=0.3))
    upstream.hang_next(2)
    opened = time.monotonic() + 0.3
    await failures(*(client.chat(BODY, deadline=opened) for _ in range(2)))
    assert state(client) == "open"
    # the upstream has recovered: the first call after open_s probes it and closes the circuit
    await asyncio.sleep(opened + 0.32 - time.monotonic())
    assert state(client) == "half_open"
    assert (await client.chat(BODY, deadline=within(5))).text == "echo: where is my parcel"
    assert state(client) == "closed"
    assert time.monotonic() - opened < 0.45
    assert metric("trivium_upstream_circuit_state", upstream=client.name) == 0


async def test_a_hung_probe_holds_the_circuit_no_longer_than_its_lease(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    section = options(breaker_failures=2, breaker_open_s=0.2, breaker_probe_timeout_s=0.3)
    client = make_client(section)
    upstream.fail_next(2, status=500)
    await failures(*(client.chat(BODY, deadline=within(5)) for _ in range(2)))
    await asyncio.sleep(0.2)

    upstream.hang_next(1)
    probe = asyncio.create_task(client.chat(BODY, deadline=within(1.0)))
    await asyncio.sleep(0.1)
    refused = await failure(client.chat(BODY, deadline=within(5)))
    assert refused.kind == "circuit_open"
    assert refused.retry_after_s is not None
    assert 0 < refused.retry_after_s <= 0.3
    await asyncio.sleep(0.25)
    started = time.monotonic()
    assert (await client.chat(BODY, deadline=within(5))).attempts == 1  # the next probe
    assert time.monotonic() - started < 0.1
    assert state(client) == "closed"
    assert (await failure(probe)).kind == "timeout"  # the hung probe times out later...
    assert state(client) == "closed"  # ...and, superseded, moves nothing


# -- backpressure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "kind"),
    [(503, 2, "backpressure"), (503, None, "backpressure"), (429, 2, "rate_limited")],
)
async def test_backpressure_never_opens_the_circuit(
    upstream: OpenAIUpstream,
    make_client: MakeClient,
    status: int,
    retry_after: float | None,
    kind: str,
) -> None:
    client = make_client(options(breaker_failures=2))
    upstream.fail_next(6, status=status, retry_after=retry_after)
    errors = [await failure(client.chat(BODY, deadline=within(1))) for _ in range(6)]
    assert {(error.kind, error.status, error.http_status) for error in errors} == {
        (kind, status, 503)
    }
    assert {error.retry_after_s for error in errors} == {retry_after}
    assert state(client) == "closed"
    assert metric("trivium_upstream_errors_total", upstream=client.name, kind=kind) == 6


async def test_a_503_retry_after_is_honoured_within_the_deadline(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    client = make_client(options(max_retries=2))
    upstream.fail_next(1, status=503, retry_after=0.3)
    started = time.monotonic()
    assert (await client.chat(BODY, deadline=within(5))).attempts == 2
    assert time.monotonic() - started >= 0.3

    upstream.fail_next(1, status=503, retry_after=30)
    started = time.monotonic()
    error = await failure(client.chat(BODY, deadline=within(2)))
    assert time.monotonic() - started < 0.3  # past the deadline: give up at once
    assert (error.kind, error.retry_after_s) == ("backpressure", 30)


# -- the adaptive concurrency limit ---------------------------------------------------------


def limit_gauges(client: UpstreamClient) -> tuple[float | None, float | None]:
    return (
        metric("trivium_upstream_concurrency_limit", upstream=client.name),
        metric("trivium_upstream_in_flight", upstream=client.name),
    )


async def test_the_limit_shrinks_under_503s_and_grows_back(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    section = options(
        concurrency_min=1,
        concurrency_initial=8,
        concurrency_max=8,
        concurrency_decrease_ratio=0.5,
    )
    client = make_client(section)
    assert limit_gauges(client) == (8, 0)
    upstream.delay_s = 0.05
    upstream.fail_next(8, status=503, retry_after=1)
    await failures(*(client.chat(BODY, deadline=within(2)) for _ in range(8)))
    assert client.concurrency.limit == 4  # one burst of "queue full": one decrease
    upstream.fail_next(4, status=503, retry_after=1)
    await failures(*(client.chat(BODY, deadline=within(2)) for _ in range(4)))
    assert client.concurrency.limit == 2
    assert limit_gauges(client) == (2, 0)
    assert state(client) == "closed"

    upstream.delay_s = 0.02
    rounds = 0
    while client.concurrency.limit < 8:  # a full limit's worth at once, each round
        rounds += 1
        assert rounds <= 30
        batch = client.concurrency.limit
        results = await asyncio.gather(
            *(client.chat(BODY, deadline=within(2)) for _ in range(batch))
        )
        assert all(result.attempts == 1 for result in results)
    assert limit_gauges(client) == (8, 0)


async def test_timeouts_shrink_the_limit(upstream: OpenAIUpstream, make_client: MakeClient) -> None:
    client = make_client(options(breaker_failures=10, concurrency_decrease_ratio=0.5))
    upstream.hang_next(4)
    await failures(*(client.chat(BODY, deadline=within(0.2)) for _ in range(4)))
    assert client.concurrency.limit == 16


async def test_calls_beyond_the_limit_are_shed_at_once(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    section = options(concurrency_min=1, concurrency_initial=2, concurrency_max=2)
    client = make_client(section)
    upstream.delay_s = 0.3
    busy = [asyncio.create_task(client.chat(BODY, deadline=within(5))) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert limit_gauges(client) == (2, 2)

    started = time.monotonic()
    shed = await failure(client.chat(BODY, deadline=within(5)))
    assert time.monotonic() - started < 0.02
    assert (shed.kind, shed.http_status, shed.retry_after_s) == ("overloaded", 503, 1.0)
    assert metric("trivium_upstream_errors_total", upstream=client.name, kind="overloaded") == 1
    assert len(upstream.requests) == 2  # the shed call never reached the upstream

    answer = failure_error("faq", shed)
    assert isinstance(answer, OverloadedError)
    assert isinstance(answer, UnavailableError)
    assert (answer.status_code, answer.code, answer.retry_after_s) == (503, "overloaded", 1)
    assert answer.extra == {"upstream": client.name, "upstream_error": "overloaded"}

    await asyncio.gather(*busy)
    assert limit_gauges(client) == (2, 0)
    assert state(client) == "closed"  # shedding says nothing about the upstream's health
    assert (await client.chat(BODY, deadline=within(5))).attempts == 1


async def test_a_stream_holds_its_slot_until_it_ends(
    upstream: OpenAIUpstream, make_client: MakeClient
) -> None:
    section = options(concurrency_min=1, concurrency_initial=1, concurrency_max=1)
    client = make_client(section)
    upstream.stream_delay_s = 0.05
    stream = client.stream(BODY, deadline=within(5))
    assert isinstance(await anext(stream), StreamDelta)
    assert (await failure(client.chat(BODY, deadline=within(5)))).kind == "overloaded"
    await stream.aclose()  # abandoned: the slot is free again, no verdict
    assert client.concurrency.in_flight == 0
    upstream.stream_delay_s = 0.0
    items = [item async for item in client.stream(BODY, deadline=within(5))]
    assert len(items) > 1
    assert client.concurrency.in_flight == 0


async def test_a_removed_upstream_drops_its_state_series(upstream: OpenAIUpstream) -> None:
    pool = UpstreamPool(options(), retire_after_s=0.05)
    name = f"gone-{uuid.uuid4().hex[:8]}"
    try:
        pool.sync({name: Upstream(url=upstream.url, model="m")})
        assert metric("trivium_upstream_concurrency_limit", upstream=name) == 32
        pool.sync({})
        for series in ("circuit_state", "concurrency_limit", "in_flight"):
            assert metric(f"trivium_upstream_{series}", upstream=name) is None
    finally:
        await pool.aclose()


@pytest.mark.parametrize(
    "bounds",
    [
        {"concurrency_min": 8, "concurrency_initial": 4},
        {"concurrency_initial": 300},
        {"concurrency_decrease_ratio": 1.0},
        {"concurrency_min": 0},
    ],
)
def test_inconsistent_limits_are_rejected(bounds: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        UpstreamClientSection(**bounds)
