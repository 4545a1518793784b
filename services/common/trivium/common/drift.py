"""Drift statistics shared by the retriever and the gateway: pure Python, no numpy.

A baseline is frozen as bin edges (its own quantiles) and the share of its values in each
bin; a window is compared with it by the population-stability index (PSI). Categorical
features (labels) are compared by Pearson's chi-square.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence

import msgspec

__all__ = (
    "BinnedBaseline",
    "chi_square_p",
    "freeze_bins",
    "lower_quantile",
    "psi",
)

DEFAULT_BINS = 5
"""Quantile bins of a baseline. PSI's bias for equal distributions is about
(bins - 1) * (1/n + 1/m); five bins keep it near 0.1 for windows of 50 against 100."""


class BinnedBaseline(msgspec.Struct, frozen=True):
    edges: tuple[float, ...]
    """Inner cut points, ascending and distinct: len(edges) + 1 bins."""
    shares: tuple[float, ...]
    """Smoothed share of the baseline's values in each bin (sums to 1)."""


def freeze_bins(values: Sequence[float], bins: int = DEFAULT_BINS) -> BinnedBaseline:
    """Bins at the baseline's own quantiles; tied cut points merge (a spike is one bin)."""
    ordered = sorted(values)
    n = len(ordered)
    edges: list[float] = []
    for i in range(1, bins):
        cut = ordered[min(n - 1, (i * n) // bins)] if n else 0.0
        if not edges or cut > edges[-1]:
            edges.append(cut)
    counts = _counts(ordered, edges)
    return BinnedBaseline(tuple(edges), _smoothed(counts))


def psi(baseline: BinnedBaseline, window: Sequence[float]) -> float:
    """Population-stability index: sum over bins of (w - b) * ln(w / b)."""
    actual = _smoothed(_counts(window, baseline.edges))
    return sum((w - b) * math.log(w / b) for w, b in zip(actual, baseline.shares, strict=True))


def lower_quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def chi_square_p(expected: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """Pearson's chi-square of `counts` against the `expected` shares (categories absent from
    the baseline get a small expected share), its p-value by Wilson-Hilferty's approximation."""
    total = sum(counts.values())
    categories = set(expected) | set(counts)
    if total == 0 or len(categories) < 2:
        return 1.0
    floor = 0.5 / max(total, 1)
    statistic = 0.0
    for category in categories:
        share = max(expected.get(category, 0.0), floor)
        e = share * total
        statistic += (counts.get(category, 0) - e) ** 2 / e
    k = len(categories) - 1
    z = ((statistic / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return 0.5 * math.erfc(z / math.sqrt(2))


def _counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[bisect_right(edges, value)] += 1
    return counts


def _smoothed(counts: Sequence[int]) -> tuple[float, ...]:
    """+0.5 per bin, so an empty bin costs a finite PSI."""
    total = sum(counts) + 0.5 * len(counts)
    return tuple((c + 0.5) / total for c in counts)
