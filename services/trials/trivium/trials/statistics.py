"""Intervals and paired tests for trial KPIs: deterministic (seeded numpy), pure.

Intervals are 95% percentile-bootstrap intervals: resample the cases with replacement
`resamples` times, compute the statistic on each resample, and take the 2.5th and 97.5th
percentiles of those values. A rate every case agrees on (all correct) gets the zero-width
interval [1, 1]: the percentile bootstrap cannot see beyond the sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from trivium.common.contracts.trials import Estimate

__all__ = (
    "CONFIDENCE",
    "Statistic",
    "bootstrap_interval",
    "mcnemar_exact",
    "mean",
    "paired_bootstrap",
    "percentiles",
)

CONFIDENCE = 0.95
_TAIL = (1 - CONFIDENCE) / 2
# Resamples are drawn in blocks of at most this many numbers, so 100k cases stay in memory.
_BLOCK_ELEMENTS = 4_000_000

Statistic = Callable[[NDArray[np.float64]], float]
"""Maps the 1-D array of one (re)sample to one number."""


def mean(values: NDArray[np.float64]) -> float:
    return float(np.mean(values))


def _resampled(
    values: NDArray[np.float64], statistic: Statistic, resamples: int, seed: int
) -> NDArray[np.float64]:
    """The statistic over `resamples` bootstrap resamples of `values` (same seed, same result)."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = len(values)
    block = max(1, _BLOCK_ELEMENTS // n)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        samples = values[rng.integers(0, n, size=(count, n))]
        if statistic is mean:
            out[start : start + count] = samples.mean(axis=1)
        else:
            out[start : start + count] = [statistic(row) for row in samples]
    return out


def _as_array(values: Sequence[float] | NDArray[np.float64], what: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{what} must be a non-empty sequence of numbers")
    return array


def bootstrap_interval(
    values: Sequence[float] | NDArray[np.float64],
    statistic: Statistic = mean,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """The statistic over `values` with its 95% percentile-bootstrap interval.

    Booleans are 0/1, so the mean of them is a rate. The interval is widened to include the
    value itself in the rare skewed sample where the percentiles would leave it outside.
    """
    array = _as_array(values, "values")
    value = statistic(array)
    low, high = np.quantile(_resampled(array, statistic, resamples, seed), [_TAIL, 1 - _TAIL])
    return Estimate(
        value=value, low=min(float(low), value), high=max(float(high), value), n=len(array)
    )


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (b right and a wrong, and back).

    Under the null each discordant pair goes either way with probability 1/2, so the p-value is
    twice the binomial tail of the smaller count, capped at 1; exact in integers.
    """
    if b_only < 0 or a_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = b_only + a_only
    if n == 0:
        return 1.0
    tail, term = 0, 1  # term = comb(n, i), updated in place rather than recomputed
    for i in range(min(b_only, a_only) + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / (1 << n))


def paired_bootstrap(
    a: Sequence[float] | NDArray[np.float64],
    b: Sequence[float] | NDArray[np.float64],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """`(difference, low, high, p)` for mean(b) - mean(a) over paired cases.

    The pairs are resampled together. The interval is the 95% percentile interval of the
    resampled differences; the two-sided p-value is twice the share of resampled differences
    on the far side of 0 (at or beyond it), with the +1 correction so it is never exactly 0,
    capped at 1: the test that this interval inverts.
    """
    first, second = _as_array(a, "a"), _as_array(b, "b")
    if len(first) != len(second):
        raise ValueError(f"a and b must pair up: {len(first)} != {len(second)}")
    differences = second - first
    difference = float(np.mean(differences))
    resampled = _resampled(differences, mean, resamples, seed)
    low, high = np.quantile(resampled, [_TAIL, 1 - _TAIL])
    at_or_below, at_or_above = np.sum(resampled <= 0), np.sum(resampled >= 0)
    p = min(1.0, 2 * (int(min(at_or_below, at_or_above)) + 1) / (resamples + 1))
    return difference, min(float(low), difference), max(float(high), difference), p


def percentiles(
    values: Sequence[float] | NDArray[np.float64], points: Sequence[float] = (50, 95, 99)
) -> list[float]:
    """The given percentiles (0..100) of `values`, linearly interpolated between order stats."""
    array = _as_array(values, "values")
    return [float(v) for v in np.percentile(array, list(points))]
