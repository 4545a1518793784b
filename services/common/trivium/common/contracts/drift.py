"""Drift monitoring on the wire: the retriever's per-collection report and the gateway's
per-feature one (`GET /v1/collections/{c}/drift`, `GET /v1/features/{f}/drift`)."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = (
    "ANSWER_SIGNALS",
    "QUERY_SIGNALS",
    "SIGNALS",
    "BaselineReset",
    "CollectionDrift",
    "DriftSignal",
    "FeatureDrift",
    "QueryCluster",
)

QUERY_SIGNALS = (
    "query_centroid_shift",
    "query_nn_distance_psi",
    "retrieval_top1_psi",
    "retrieval_mean_psi",
    "retrieval_low_score_share",
)
"""The retriever's signals, per collection and search mode."""
ANSWER_SIGNALS = (
    "answer_groundedness_psi",
    "answer_length_psi",
    "answer_withheld_rate_increase",
    "answer_label_chi2",
    "cost_tokens_psi",
    "latency_total_psi",
    "latency_retrieve_psi",
    "latency_generate_psi",
)
"""The gateway's signals, per feature."""
SIGNALS = QUERY_SIGNALS + ANSWER_SIGNALS
"""Every `signal` label of `trivium_drift_score` (a bounded set)."""

BaselineStatus = Literal["collecting", "frozen"]


class DriftSignal(msgspec.Struct, frozen=True):
    name: str
    value: float | None
    """None while the window or the baseline is too small to judge."""
    threshold: float
    drifting: bool


class QueryCluster(msgspec.Struct, frozen=True):
    """Queries of the window that sit together and far from every baseline query."""

    size: int
    share: float
    """Of the window."""
    distance: float
    """Mean cosine distance of its queries to their nearest baseline query."""
    examples: list[str]
    """Up to three of its queries (cut to 200 characters), never vectors."""


class CollectionDrift(msgspec.Struct, frozen=True):
    collection: str
    mode: str
    baseline: BaselineStatus
    baseline_n: int
    baseline_size: int
    window_n: int
    window_size: int
    signals: list[DriftSignal]
    clusters: list[QueryCluster]


class FeatureDrift(msgspec.Struct, frozen=True):
    feature: str
    baseline: BaselineStatus
    baseline_n: int
    baseline_size: int
    window_n: int
    window_size: int
    signals: list[DriftSignal]
    """The gateway's (answers, cost, latency) then the retriever's (queries, retrieval)."""
    clusters: list[QueryCluster]
    retrieval: CollectionDrift | None = None
    retrieval_error: str | None = None
    """Why the retriever's side is missing (the feature retrieves but it did not answer)."""


class BaselineReset(msgspec.Struct, frozen=True):
    feature: str
    reset: list[str]
    """What now collects a new baseline: `gateway`, `retriever:<collection>/<mode>`."""
    retrieval_error: str | None = None
