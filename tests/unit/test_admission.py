"""The in-flight bound: up to `limit` requests at once, then 503 at once with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import ExitStack

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.support.prometheus import sample_value
from trivium.common.errors import UnavailableError
from trivium.gateway.invoke.admission import Admission
from trivium.gateway.invoke.errors import OverloadedError
from trivium.gateway.telemetry.metrics import KpiMetrics, KpiRecorder


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def admission(registry: CollectorRegistry) -> Admission:
    return Admission(3, retry_after_s=2, kpis=KpiRecorder(KpiMetrics(registry)))


def in_flight(registry: CollectorRegistry) -> float:
    return sample_value(generate_latest(registry).decode(), "trivium_in_flight_requests")


def rejections(registry: CollectorRegistry) -> float:
    return sample_value(generate_latest(registry).decode(), "trivium_overload_rejections_total")


def test_admits_up_to_the_limit_then_refuses(
    admission: Admission, registry: CollectorRegistry
) -> None:
    with ExitStack() as held:
        for expected in (1, 2, 3):
            held.enter_context(admission.admitted())
            assert admission.in_flight == expected
            assert in_flight(registry) == expected
        assert rejections(registry) == 0
        with pytest.raises(OverloadedError) as excinfo, admission.admitted():
            pass
        error = excinfo.value
        assert isinstance(error, UnavailableError)
        assert (error.status_code, error.code, error.retry_after_s) == (503, "overloaded", 2)
        assert "3" in error.message
        assert admission.in_flight == 3
        assert rejections(registry) == 1
    assert admission.in_flight == 0
    assert in_flight(registry) == 0


def test_the_slot_is_released_when_the_block_fails(
    admission: Admission, registry: CollectorRegistry
) -> None:
    def fail_while_admitted() -> None:
        with admission.admitted():
            assert admission.in_flight == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_while_admitted()
    assert admission.in_flight == 0
    assert in_flight(registry) == 0


async def test_a_stream_closed_midway_releases_its_slot(admission: Admission) -> None:
    async def stream() -> AsyncGenerator[int, None]:
        with admission.admitted():
            for item in range(10):
                yield item

    events = stream()
    assert await events.__anext__() == 0
    assert admission.in_flight == 1
    await events.aclose()
    assert admission.in_flight == 0


def test_a_limit_of_zero_refuses_everything(registry: CollectorRegistry) -> None:
    admission = Admission(0, retry_after_s=1, kpis=KpiRecorder(KpiMetrics(registry)))
    with pytest.raises(OverloadedError), admission.admitted():
        pass
    assert in_flight(registry) == 0
    assert rejections(registry) == 1
