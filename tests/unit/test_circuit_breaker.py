"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest

from trivium.gateway.clients.breaker import CircuitBreaker, CircuitOpenError, CircuitState


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
    return CircuitBreaker(
        3, 10.0, clock, probe_timeout_s=4.0, name="vllm", on_change=changes.append
    )


def state(breaker: CircuitBreaker) -> str:
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.failed(breaker.admit())


def refusal(breaker: CircuitBreaker) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as caught:
        breaker.admit()
    return caught.value


def test_opens_after_n_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker, 1)
    assert state(breaker) == "open"


def test_a_success_resets_the_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.succeeded(breaker.admit())
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
    breaker.admit()  # the probe
    assert refusal(breaker).message == "circuit half-open, probe running"
    clock.now += 1
    assert refusal(breaker).retry_after_s == pytest.approx(3.0)  # the probe's lease left


def test_probe_success_closes(
    breaker: CircuitBreaker, clock: Clock, changes: list[CircuitState]
) -> None:
    fail(breaker, 3)
    clock.now += 10
    breaker.succeeded(breaker.admit())
    assert state(breaker) == "closed"
    for _ in range(5):
        breaker.admit()  # admits everyone again
    assert changes == ["open", "half_open", "closed"]


def test_probe_failure_reopens_for_open_s(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    breaker.failed(breaker.admit())
    assert state(breaker) == "open"
    assert refusal(breaker).retry_after_s == pytest.approx(10.0)
    clock.now += 10
    breaker.admit()
    assert state(breaker) == "half_open"


def test_an_abandoned_probe_frees_the_slot(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    breaker.release(breaker.admit())
    breaker.admit()
    assert state(breaker) == "half_open"


def test_a_hung_probe_holds_the_slot_no_longer_than_its_lease(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 10
    hung = breaker.admit()
    clock.now += 3.9
    refusal(breaker)
    clock.now += 0.1
    fresh = breaker.admit()  # the next caller probes afresh
    breaker.failed(hung)  # the superseded probe's late verdict does not reopen
    assert state(breaker) == "half_open"
    breaker.release(hung)  # nor does its release free the fresh probe's slot
    refusal(breaker)
    breaker.succeeded(fresh)
    assert state(breaker) == "closed"


def test_a_superseded_probe_that_answers_closes(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 10
    slow = breaker.admit()
    clock.now += 5
    breaker.admit()
    breaker.succeeded(slow)  # any answer proves the upstream alive
    assert state(breaker) == "closed"


def test_stragglers_do_not_move_an_open_circuit(breaker: CircuitBreaker, clock: Clock) -> None:
    admitted_before = [breaker.admit() for _ in range(2)]
    fail(breaker, 3)
    clock.now += 5
    breaker.failed(admitted_before[0])
    breaker.succeeded(admitted_before[1])
    assert state(breaker) == "open"
    assert refusal(breaker).retry_after_s == pytest.approx(5.0)


def test_stragglers_do_not_reopen_a_recovered_circuit(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    """Calls that hung until their own deadline fail long after the circuit opened: neither
    a probe's half-open nor the closed circuit after it counts them."""
    hung = [breaker.admit() for _ in range(6)]
    for ticket in hung[:3]:
        breaker.failed(ticket)
    assert state(breaker) == "open"
    clock.now += 10
    probe = breaker.admit()
    breaker.failed(hung[3])
    assert state(breaker) == "half_open"
    breaker.succeeded(probe)
    breaker.failed(hung[4])
    breaker.failed(hung[5])
    fail(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker, 1)
    assert state(breaker) == "open"


def test_answers_that_prove_the_upstream_alive_do_not_count(breaker: CircuitBreaker) -> None:
    """The clients report 4xx, 429 and 503 as successes: the upstream answered."""
    for _ in range(10):
        fail(breaker, 2)
        breaker.succeeded(breaker.admit())
    assert state(breaker) == "closed"


def test_without_a_lease_a_probe_holds_the_slot_until_its_verdict(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock)
    fail(breaker, 1)
    clock.now += 1
    probe = breaker.admit()
    clock.now += 3600
    refusal(breaker)
    breaker.release(probe)
    breaker.admit()
