"""The upstreams' adaptive concurrency limit (AIMD), call by call."""

from __future__ import annotations

import pytest

from trivium.gateway.clients.upstream import AdaptiveLimit


def fill(limit: AdaptiveLimit) -> list[int]:
    """Acquire until the limit sheds."""
    tickets = []
    while (ticket := limit.acquire()) is not None:
        tickets.append(ticket)
    return tickets


def test_admits_up_to_the_limit_then_sheds() -> None:
    reported: list[tuple[int, int]] = []
    limit = AdaptiveLimit(1, 4, 10, 0.5, on_change=lambda *pair: reported.append(pair))
    tickets = fill(limit)
    assert len(tickets) == 4
    assert limit.acquire() is None
    assert reported[0] == (4, 0)
    assert reported[-1] == (4, 4)
    limit.release(tickets[0])
    assert limit.acquire() is not None


def test_one_decrease_per_window() -> None:
    limit = AdaptiveLimit(1, 8, 10, 0.5)
    tickets = fill(limit)
    for ticket in tickets:  # a burst of "queue full": the same congestion, acted on once
        limit.congested(ticket)
    assert limit.limit == 4
    assert limit.in_flight == 0
    again = fill(limit)
    limit.congested(again[0])
    assert limit.limit == 2
    for ticket in again[1:]:
        limit.release(ticket)


def test_never_below_the_minimum_nor_above_the_maximum() -> None:
    limit = AdaptiveLimit(2, 4, 5, 0.5)
    for _ in range(10):
        limit.congested(fill(limit)[0])
        limit.in_flight = 0
    assert limit.limit == 2
    for _ in range(200):
        tickets = fill(limit)
        for ticket in tickets:
            limit.succeeded(ticket)
    assert limit.limit == 5


def test_grows_by_one_per_window_of_successes_only_while_in_use() -> None:
    limit = AdaptiveLimit(1, 4, 100, 0.5)
    for _ in range(20):  # one call at a time: a quarter of the limit, no evidence of headroom
        ticket = limit.acquire()
        assert ticket is not None
        limit.succeeded(ticket)
    assert limit.limit == 4
    windows = 0
    while limit.limit == 4:  # calls ending while at least half of the limit is in use
        windows += 1
        for ticket in fill(limit):
            limit.succeeded(ticket)
    assert limit.limit == 5
    assert 2 <= windows <= 3


@pytest.mark.parametrize(
    ("minimum", "initial", "maximum", "ratio"),
    [(0, 1, 1, 0.5), (3, 2, 4, 0.5), (1, 5, 4, 0.5), (1, 2, 4, 1.0), (1, 2, 4, 0.0)],
)
def test_rejects_inconsistent_bounds(
    minimum: int, initial: int, maximum: int, ratio: float
) -> None:
    with pytest.raises(ValueError, match=r"minimum|decrease_ratio"):
        AdaptiveLimit(minimum, initial, maximum, ratio)
