"""The upstream circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest

from trivium.gateway.clients.upstream.breaker import CircuitBreaker, CircuitState
from trivium.gateway.clients.upstream.errors import UpstreamError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[CircuitState]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[CircuitState]) -> CircuitBreaker:
    return CircuitBreaker(3, 10.0, clock, upstream="vllm", on_change=changes.append)


def state(breaker: CircuitBreaker) -> str:
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_attempt()
        breaker.record_failure()


def refusal(breaker: CircuitBreaker) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        breaker.before_attempt()
    assert caught.value.kind == "circuit_open"
    assert caught.value.upstream == "vllm"
    assert caught.value.http_status == 503
    return caught.value


def test_opens_after_n_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker, 1)
    assert state(breaker) == "open"


def test_a_success_resets_the_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.before_attempt()
    breaker.record_success()
    fail(breaker, 2)
    assert state(breaker) == "closed"


def test_open_refuses_with_the_time_remaining(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    assert refusal(breaker).retry_after_s == pytest.approx(10.0)
    clock.now += 4
    assert refusal(breaker).retry_after_s == pytest.approx(6.0)


def test_half_open_admits_one_probe_at_a_time(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    assert state(breaker) == "half_open"
    breaker.before_attempt()  # the probe
    refusal(breaker)
    refusal(breaker)


def test_probe_success_closes(
    breaker: CircuitBreaker, clock: Clock, changes: list[CircuitState]
) -> None:
    fail(breaker, 3)
    clock.now += 10
    breaker.before_attempt()
    breaker.record_success()
    assert state(breaker) == "closed"
    for _ in range(5):
        breaker.before_attempt()  # admits everyone again
    assert changes == ["open", "half_open", "closed"]


def test_probe_failure_reopens_for_open_s(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    breaker.before_attempt()
    breaker.record_failure()
    assert state(breaker) == "open"
    assert refusal(breaker).retry_after_s == pytest.approx(10.0)
    clock.now += 10
    breaker.before_attempt()
    assert state(breaker) == "half_open"


def test_an_abandoned_probe_frees_the_slot(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    breaker.before_attempt()
    breaker.release()
    breaker.before_attempt()
    assert state(breaker) == "half_open"


def test_stragglers_do_not_move_an_open_circuit(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 5
    breaker.record_failure()  # admitted before the circuit opened
    breaker.record_success()
    assert state(breaker) == "open"
    assert refusal(breaker).retry_after_s == pytest.approx(5.0)


def test_answers_that_prove_the_upstream_alive_do_not_count(breaker: CircuitBreaker) -> None:
    """The client reports 4xx and 429 as successes: the upstream answered."""
    for _ in range(10):
        fail(breaker, 2)
        breaker.before_attempt()
        breaker.record_success()
    assert state(breaker) == "closed"
