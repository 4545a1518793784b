"""Intervals and paired tests: known values, the percentile method, seeded reproducibility."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trivium.trials.statistics import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    percentiles,
)


@pytest.mark.parametrize(
    ("b_only", "a_only", "p"),
    [
        (10, 2, 79 / 2048),  # 2 * (1 + 12 + 66) / 2**12 = 0.0386
        (2, 10, 79 / 2048),
        (0, 6, 2 / 64),
        (1, 9, 22 / 1024),
        (5, 5, 1.0),
        (0, 0, 1.0),
        (3, 4, 1.0),  # 2 * P(X <= 3 | n=7) = 1 exactly
    ],
)
def test_mcnemar_exact_against_hand_computed_values(b_only: int, a_only: int, p: float) -> None:
    assert mcnemar_exact(b_only, a_only) == pytest.approx(p, rel=1e-12)


def test_mcnemar_rounds_as_published() -> None:
    assert round(mcnemar_exact(10, 2), 4) == 0.0386


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        mcnemar_exact(-1, 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_is_the_doubled_binomial_tail(b_only: int, a_only: int) -> None:
    n = b_only + a_only
    tail = sum(Fraction(math.comb(n, i), 2**n) for i in range(min(b_only, a_only) + 1))
    expected = min(Fraction(1), 2 * tail) if n else Fraction(1)
    assert mcnemar_exact(b_only, a_only) == pytest.approx(float(expected), rel=1e-12)
    assert mcnemar_exact(b_only, a_only) == mcnemar_exact(a_only, b_only)


def test_bootstrap_is_the_percentile_method_and_reproducible() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    estimate = bootstrap_interval(values, resamples=500, seed=7)
    # The same resamples drawn by hand: 2.5th and 97.5th percentiles of their means.
    draws = np.random.default_rng(7).integers(0, len(values), size=(500, len(values)))
    low, high = np.quantile(np.asarray(values)[draws].mean(axis=1), [0.025, 0.975])
    assert (estimate.low, estimate.high) == (float(low), float(high))
    assert estimate.value == 0.7
    assert estimate.n == 10
    assert estimate.low < 0.7 < estimate.high
    assert bootstrap_interval(values, resamples=500, seed=7) == estimate
    continuous = [0.13, 0.52, 0.91, 0.34, 0.77, 0.26, 0.48]
    assert bootstrap_interval(continuous, seed=1) == bootstrap_interval(continuous, seed=1)
    assert bootstrap_interval(continuous, seed=1) != bootstrap_interval(continuous, seed=2)


def test_bootstrap_with_another_statistic() -> None:
    values = [1.0, 2.0, 3.0, 100.0]
    estimate = bootstrap_interval(values, lambda v: float(np.median(v)), resamples=200)
    assert estimate.value == 2.5
    assert 1.0 <= estimate.low <= 2.5 <= estimate.high <= 100.0


def test_a_unanimous_rate_has_a_zero_width_interval() -> None:
    estimate = bootstrap_interval([True] * 12)
    assert (estimate.value, estimate.low, estimate.high) == (1.0, 1.0, 1.0)


def test_bootstrap_refuses_an_empty_sample() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_bootstrap_interval_holds_the_value_within_the_sample(
    values: list[float], seed: int
) -> None:
    estimate = bootstrap_interval(values, resamples=200, seed=seed)
    assert estimate.low <= estimate.value <= estimate.high
    assert min(values) - 1e-6 <= estimate.low
    assert estimate.high <= max(values) + 1e-6


def test_paired_bootstrap_sees_a_consistent_improvement() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.1, 80)
    b = a + 0.05 + rng.normal(0, 0.01, 80)
    difference, low, high, p = paired_bootstrap(a, b, resamples=1000, seed=3)
    assert difference == pytest.approx(float(np.mean(b - a)))
    assert 0 < low < difference < high
    assert p == pytest.approx(2 / 1001)  # no resample at or below 0: the +1 floor
    assert paired_bootstrap(a, b, resamples=1000, seed=3) == (difference, low, high, p)


def test_paired_bootstrap_on_no_difference() -> None:
    same = [0.2, 0.4, 0.9]
    assert paired_bootstrap(same, same) == (0.0, 0.0, 0.0, 1.0)
    difference, low, high, p = paired_bootstrap([0, 1, 0, 1, 1, 0], [1, 0, 1, 0, 1, 0])
    assert difference == 0.0
    assert low < 0 < high
    assert p == 1.0


def test_paired_bootstrap_needs_pairs() -> None:
    with pytest.raises(ValueError, match="pair up"):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_percentiles_interpolate_linearly() -> None:
    assert percentiles([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]) == pytest.approx(
        [55.0, 95.5, 99.1]
    )
    assert percentiles([3.0], (50, 99)) == [3.0, 3.0]
