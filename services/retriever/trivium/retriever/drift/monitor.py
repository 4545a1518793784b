"""Query and retrieval drift: each search leaves one observation; signals are computed when
asked (`report`), never on the search path.

Per (collection, mode), a *track*: the first `baseline_size` searches after a reset are the
baseline, then frozen (centroid, the query vectors, quantile bins of the nearest-neighbour
distance and of the top-1 and mean fused scores, the best score's 5th percentile); the
latest `window_size` searches are the window. Memory is bounded: at most `max_tracks`
tracks, each at most baseline_size + window_size observations (a 384-float vector, three
floats and the query cut to 200 characters: about 2 KiB each).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from trivium.common.contracts.drift import CollectionDrift, DriftSignal, QueryCluster
from trivium.common.drift import BinnedBaseline, freeze_bins, lower_quantile, psi
from trivium.retriever.config import QueryDriftSection

__all__ = ("Observation", "QueryDriftMonitor")

log = logging.getLogger(__name__)

EXAMPLE_CHARS = 200
MAX_CLUSTERS = 5
CLUSTER_SIMILARITY = 0.35
"""A novel query joins a cluster whose first query it is at least this similar to (cosine)."""

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Observation:
    query: str
    vector: Vector | None
    """The unit query vector (None in sparse mode)."""
    nn_distance: float | None
    """1 - cosine similarity of the nearest chunk (None in sparse mode, or no hit)."""
    top1: float
    """The best fused score before any re-rank (0 with no hit)."""
    mean: float
    """The mean fused score of the hits returned."""
    best: float
    """The best absolute relevance: the nearest chunk's cosine similarity when the dense road
    ran, else the top-1 score. RRF's fused score is rank-only, so it cannot tell a query the
    collection does not cover (measured on CISI: off-topic and on-topic top-1 fused scores
    overlap; dense similarities do not)."""


@dataclass(frozen=True, slots=True)
class Baseline:
    n: int
    centroid: Vector | None
    vectors: npt.NDArray[np.float32] | None
    novelty_p95: float
    nn: BinnedBaseline | None
    top1: BinnedBaseline
    mean: BinnedBaseline
    best_p5: float


@dataclass(slots=True)
class Track:
    baseline_size: int
    window_size: int
    collecting: list[Observation] = field(default_factory=list)
    baseline: Baseline | None = None
    window: deque[Observation] = field(default_factory=deque)

    def add(self, observation: Observation) -> None:
        if self.baseline is None:
            self.collecting.append(observation)
            if len(self.collecting) >= self.baseline_size:
                self.baseline = freeze(self.collecting)
                self.collecting = []
            return
        self.window.append(observation)
        if len(self.window) > self.window_size:
            self.window.popleft()


class QueryDriftMonitor:
    def __init__(self, settings: QueryDriftSection) -> None:
        self.settings = settings
        self._tracks: dict[tuple[str, str], Track] = {}
        self._lock = threading.Lock()
        self._refused: set[tuple[str, str]] = set()

    def observe(
        self,
        collection: str,
        mode: str,
        query: str,
        vector: Sequence[float] | None,
        nearest_similarity: float | None,
        scores: Sequence[float],
    ) -> None:
        """One search: its query vector, its nearest chunk's cosine similarity, and the fused
        scores of the hits it returns (best first). A few microseconds."""
        if not self.settings.enabled:
            return
        key = (collection, mode)
        track = self._tracks.get(key)
        if track is None:
            track = self._new_track(key)
            if track is None:
                return
        observation = Observation(
            query=query[:EXAMPLE_CHARS],
            vector=np.asarray(vector, dtype=np.float32) if vector is not None else None,
            nn_distance=1.0 - nearest_similarity if nearest_similarity is not None else None,
            top1=scores[0] if scores else 0.0,
            mean=sum(scores) / len(scores) if scores else 0.0,
            best=nearest_similarity
            if nearest_similarity is not None
            else (scores[0] if scores else 0.0),
        )
        with self._lock:
            track.add(observation)

    def _new_track(self, key: tuple[str, str]) -> Track | None:
        with self._lock:
            if len(self._tracks) >= self.settings.max_tracks:
                if key not in self._refused and len(self._refused) < 1024:
                    self._refused.add(key)
                    log.warning(
                        "drift: too many tracks; this one is not watched",
                        extra={"collection": key[0], "mode": key[1]},
                    )
                return None
            return self._tracks.setdefault(
                key, Track(self.settings.baseline_size, self.settings.window_size)
            )

    def reset(self, collection: str) -> list[str]:
        """Every mode of `collection` collects a new baseline from its next searches."""
        with self._lock:
            keys = [key for key in self._tracks if key[0] == collection]
            for key in keys:
                self._tracks[key] = Track(self.settings.baseline_size, self.settings.window_size)
        log.info("drift baseline reset", extra={"collection": collection, "modes": keys})
        return [f"{c}/{m}" for c, m in keys]

    def forget(self, collection: str) -> None:
        with self._lock:
            for key in [key for key in self._tracks if key[0] == collection]:
                del self._tracks[key]

    def report(self, collection: str, mode: str) -> CollectionDrift:
        with self._lock:
            track = self._tracks.get((collection, mode))
            baseline = track.baseline if track else None
            collecting = len(track.collecting) if track else 0
            window = list(track.window) if track else []
        settings = self.settings
        signals = signals_of(baseline, window, settings)
        return CollectionDrift(
            collection=collection,
            mode=mode,
            baseline="frozen" if baseline is not None else "collecting",
            baseline_n=baseline.n if baseline is not None else collecting,
            baseline_size=settings.baseline_size,
            window_n=len(window),
            window_size=settings.window_size,
            signals=signals,
            clusters=clusters_of(baseline, window) if baseline is not None else [],
        )


def freeze(observations: Sequence[Observation]) -> Baseline:
    vectors = [o.vector for o in observations if o.vector is not None]
    matrix = np.stack(vectors) if vectors else None
    centroid = matrix.mean(axis=0) if matrix is not None else None
    novelty_p95 = 1.0
    if matrix is not None and len(matrix) > 1:
        similarity = matrix @ matrix.T
        np.fill_diagonal(similarity, -np.inf)
        novelty = 1.0 - similarity.max(axis=1)
        novelty_p95 = float(np.quantile(novelty, 0.95))
    nn = [o.nn_distance for o in observations if o.nn_distance is not None]
    top1 = [o.top1 for o in observations]
    return Baseline(
        n=len(observations),
        centroid=centroid,
        vectors=matrix,
        novelty_p95=novelty_p95,
        nn=freeze_bins(nn) if nn else None,
        top1=freeze_bins(top1),
        mean=freeze_bins([o.mean for o in observations]),
        best_p5=lower_quantile([o.best for o in observations], 0.05),
    )


def signals_of(
    baseline: Baseline | None, window: Sequence[Observation], settings: QueryDriftSection
) -> list[DriftSignal]:
    values: dict[str, float | None] = dict.fromkeys(
        (
            "query_centroid_shift",
            "query_nn_distance_psi",
            "retrieval_top1_psi",
            "retrieval_mean_psi",
            "retrieval_low_score_share",
        )
    )
    if baseline is not None and len(window) >= settings.min_window:
        vectors = [o.vector for o in window if o.vector is not None]
        if baseline.centroid is not None and vectors:
            values["query_centroid_shift"] = cosine_distance(
                np.stack(vectors).mean(axis=0), baseline.centroid
            )
        nn = [o.nn_distance for o in window if o.nn_distance is not None]
        if baseline.nn is not None and nn:
            values["query_nn_distance_psi"] = psi(baseline.nn, nn)
        values["retrieval_top1_psi"] = psi(baseline.top1, [o.top1 for o in window])
        values["retrieval_mean_psi"] = psi(baseline.mean, [o.mean for o in window])
        values["retrieval_low_score_share"] = sum(o.best < baseline.best_p5 for o in window) / len(
            window
        )
    thresholds = {
        "query_centroid_shift": settings.centroid_shift_threshold,
        "retrieval_low_score_share": settings.low_score_share_threshold,
    }
    return [
        DriftSignal(
            name=name,
            value=value,
            threshold=(threshold := thresholds.get(name, settings.psi_threshold)),
            drifting=value is not None and value > threshold,
        )
        for name, value in values.items()
    ]


def cosine_distance(a: Vector, b: Vector) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float(a @ b) / norms if norms else 0.0


def clusters_of(baseline: Baseline, window: Sequence[Observation]) -> list[QueryCluster]:
    """The window's queries farther from every baseline query than 95% of the baseline's own
    queries are from each other, grouped greedily by similarity; largest groups first."""
    if baseline.vectors is None:
        return []
    observed = [o for o in window if o.vector is not None]
    if not observed:
        return []
    matrix = np.stack([o.vector for o in observed if o.vector is not None])
    novelty = 1.0 - (matrix @ baseline.vectors.T).max(axis=1)
    novel = [int(i) for i in np.argsort(-novelty) if novelty[i] > baseline.novelty_p95]
    leaders: list[int] = []
    members: list[list[int]] = []
    for i in novel:
        for slot, leader in enumerate(leaders):
            if float(matrix[i] @ matrix[leader]) >= CLUSTER_SIMILARITY:
                members[slot].append(i)
                break
        else:
            leaders.append(i)
            members.append([i])
    ranked = sorted(members, key=len, reverse=True)[:MAX_CLUSTERS]
    clusters = []
    for group in ranked:
        examples: list[str] = []
        for i in group:
            if observed[i].query not in examples:
                examples.append(observed[i].query)
            if len(examples) == 3:
                break
        clusters.append(
            QueryCluster(
                size=len(group),
                share=len(group) / len(window),
                distance=round(float(novelty[group].mean()), 4),
                examples=examples,
            )
        )
    return clusters
