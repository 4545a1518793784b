"""What one answer cost, from the upstream's price."""

from __future__ import annotations

import pytest

from trivium.gateway.invoke.cost import answer_cost
from trivium.gateway.policy.model import GpuPrice, TokenPrice


def test_token_price_is_per_thousand_and_per_kind() -> None:
    price = TokenPrice(prompt_per_1k=1.0, completion_per_1k=2.0)
    assert answer_cost(price, 6, 7) == pytest.approx((6 * 1.0 + 7 * 2.0) / 1000)
    assert answer_cost(price, 1000, 0) == pytest.approx(1.0)
    assert answer_cost(price, 0, 1000) == pytest.approx(2.0)


def test_gpu_hour_price_is_amortised_over_all_tokens() -> None:
    price = GpuPrice(gpu_hour_usd=3.6, tokens_per_hour=3_600_000)
    assert answer_cost(price, 30, 8) == pytest.approx(38 * 3.6 / 3_600_000)
    assert answer_cost(price, 3_600_000, 0) == pytest.approx(3.6)
    # prompt and completion tokens cost the same on a GPU the operator pays by the hour
    assert answer_cost(price, 10, 0) == answer_cost(price, 0, 10)


def test_no_price_costs_nothing() -> None:
    assert answer_cost(None, 1000, 1000) == 0.0


def test_no_tokens_cost_nothing() -> None:
    assert answer_cost(TokenPrice(prompt_per_1k=1.0, completion_per_1k=2.0), 0, 0) == 0.0
    assert answer_cost(GpuPrice(gpu_hour_usd=3.6, tokens_per_hour=1000), 0, 0) == 0.0
