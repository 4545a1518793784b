"""The restart backoff of `trivium up`'s supervisor and its `up:` settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trivium.cli.config import UpSection
from trivium.cli.supervisor import Backoff


def test_backoff_doubles_per_failure_in_a_row_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1.0, max_s=10.0, reset_after_s=60.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(0) == 1.0


def test_up_settings_reject_a_cap_below_the_initial_backoff() -> None:
    with pytest.raises(ValidationError, match="restart_max_backoff_s"):
        UpSection(restart_initial_backoff_s=5, restart_max_backoff_s=1)
    assert UpSection().metrics_port == 8100
