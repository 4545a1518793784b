"""The in-flight bound: up to `limit` requests at once, then 503 at once with Retry-After."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.support.prometheus import sample_value
from trivium.common.errors import UnavailableError
from trivium.gateway.invoke.errors import OverloadedError
from trivium.gateway.invoke.limiter import InFlightLimiter
from trivium.gateway.telemetry.metrics import KpiMetrics, KpiRecorder


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def limiter(registry: CollectorRegistry) -> InFlightLimiter:
    return InFlightLimiter(3, retry_after_s=2, kpis=KpiRecorder(KpiMetrics(registry)))


def in_flight(registry: CollectorRegistry) -> float:
    return sample_value(generate_latest(registry).decode(), "trivium_in_flight_requests")


def rejections(registry: CollectorRegistry) -> float:
    return sample_value(generate_latest(registry).decode(), "trivium_overload_rejections_total")


def test_acquires_up_to_the_limit_then_refuses(
    limiter: InFlightLimiter, registry: CollectorRegistry
) -> None:
    for expected in (1, 2, 3):
        limiter.acquire()
        assert limiter.in_flight == expected
        assert in_flight(registry) == expected
    assert rejections(registry) == 0
    with pytest.raises(OverloadedError) as excinfo:
        limiter.acquire()
    error = excinfo.value
    assert isinstance(error, UnavailableError)
    assert (error.status_code, error.code, error.retry_after_s) == (503, "overloaded", 2)
    assert "3" in error.message
    assert limiter.in_flight == 3
    assert in_flight(registry) == 3
    assert rejections(registry) == 1
    with pytest.raises(OverloadedError):
        limiter.acquire()
    assert rejections(registry) == 2


def test_release_frees_a_slot(limiter: InFlightLimiter, registry: CollectorRegistry) -> None:
    for _ in range(3):
        limiter.acquire()
    limiter.release()
    assert limiter.in_flight == 2
    assert in_flight(registry) == 2
    limiter.acquire()
    assert in_flight(registry) == 3
    assert rejections(registry) == 0
    for _ in range(3):
        limiter.release()
    assert limiter.in_flight == 0
    assert in_flight(registry) == 0


def test_a_limit_of_zero_refuses_everything(registry: CollectorRegistry) -> None:
    limiter = InFlightLimiter(0, retry_after_s=1, kpis=KpiRecorder(KpiMetrics(registry)))
    with pytest.raises(OverloadedError):
        limiter.acquire()
    assert in_flight(registry) == 0
    assert rejections(registry) == 1
