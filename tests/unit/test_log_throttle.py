"""`LogThrottle`: one line per key per interval, with the count of lines it held back."""

from __future__ import annotations

import logging

import pytest

from trivium.common.logs import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_key_per_interval_with_the_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("t.throttle"), 30.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.throttle"):
        assert throttle.warning("cache", "cache read failed", extra={"error": "refused"})
        for _ in range(5):
            clock.now += 1
            assert not throttle.warning("cache", "cache read failed")
        assert throttle.warning("stats", "stats unreadable")  # another key: its own budget
        clock.now += 30
        assert throttle.warning("cache", "cache read failed")
    lines = [(r.getMessage(), r.__dict__.get("suppressed")) for r in caplog.records]
    assert lines == [
        ("cache read failed", 0),
        ("stats unreadable", 0),
        ("cache read failed", 5),
    ]
    assert caplog.records[0].__dict__["error"] == "refused"


def test_reset_reports_what_was_held_back_and_logs_the_next_at_once() -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("t.reset"), 30.0, clock=clock)
    throttle.warning("feed", "down")
    throttle.warning("feed", "down")
    throttle.warning("feed", "down")
    assert throttle.reset("feed") == 2
    assert throttle.warning("feed", "down")
    assert throttle.reset("never-logged") == 0
