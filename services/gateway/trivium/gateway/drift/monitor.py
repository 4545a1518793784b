"""Answer, cost and latency drift per feature: each production answer leaves one tuple in
memory (about a microsecond, no I/O); the signals are computed when asked.

Per feature: the first `baseline_size` answers after a reset (or a start, or a promotion)
are frozen as the baseline; the latest `window_size` answers are the window. Per process,
like the breakers: each replica judges the answers it served.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from trivium.common.contracts.drift import DriftSignal
from trivium.common.drift import BinnedBaseline, chi_square_p, freeze_bins, psi
from trivium.gateway.config import DriftSection
from trivium.gateway.invoke.schemas import InvokeResponse

__all__ = ("AnswerDriftMonitor", "AnswerObservation", "FeatureSnapshot")

MAX_LABELS = 20
"""Distinct labels kept per baseline; the rest count as one `(other)` category."""
OTHER = "(other)"
LABEL_CHARS = 64


class AnswerObservation(NamedTuple):
    groundedness: float | None
    length: int
    withheld: bool
    label: str | None
    tokens: int
    total_ms: float
    retrieve_ms: float
    generate_ms: float


@dataclass(frozen=True, slots=True)
class AnswerBaseline:
    n: int
    groundedness: BinnedBaseline | None
    length: BinnedBaseline
    withheld_rate: float
    labels: dict[str, float] | None
    tokens: BinnedBaseline
    total: BinnedBaseline
    retrieve: BinnedBaseline | None
    generate: BinnedBaseline | None


@dataclass(slots=True)
class Track:
    baseline_size: int
    window_size: int
    collecting: list[AnswerObservation] = field(default_factory=list)
    baseline: AnswerBaseline | None = None
    window: deque[AnswerObservation] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    baseline: AnswerBaseline | None
    collecting: int
    window: list[AnswerObservation]


class AnswerDriftMonitor:
    def __init__(self, settings: DriftSection) -> None:
        self.settings = settings
        self._tracks: dict[str, Track] = {}
        self._lock = threading.Lock()

    def observe(self, feature: str, response: InvokeResponse, labelled: bool) -> None:
        """`feature` is one of the active policy's (the tracks stay bounded)."""
        if response.cached or not self.settings.enabled:
            return
        output = response.output
        timings = response.timings_ms
        observation = AnswerObservation(
            response.groundedness,
            len(output) if output else 0,
            not output or response.verdict == "withheld",
            output.strip().lower()[:LABEL_CHARS] if labelled and output else None,
            response.usage.total_tokens,
            timings.total,
            timings.retrieve,
            timings.generate,
        )
        track = self._tracks.get(feature)
        if track is None:
            with self._lock:
                track = self._tracks.setdefault(
                    feature, Track(self.settings.baseline_size, self.settings.window_size)
                )
        with self._lock:
            if track.baseline is None:
                track.collecting.append(observation)
                if len(track.collecting) >= track.baseline_size:
                    track.baseline = freeze(track.collecting)
                    track.collecting = []
            else:
                track.window.append(observation)
                if len(track.window) > track.window_size:
                    track.window.popleft()

    def reset(self, feature: str) -> None:
        with self._lock:
            self._tracks[feature] = Track(self.settings.baseline_size, self.settings.window_size)

    def retain(self, features: Sequence[str]) -> None:
        """Drop the tracks of features no longer in the policy."""
        with self._lock:
            for name in [name for name in self._tracks if name not in features]:
                del self._tracks[name]

    def snapshot(self, feature: str) -> FeatureSnapshot:
        with self._lock:
            track = self._tracks.get(feature)
            if track is None:
                return FeatureSnapshot(None, 0, [])
            return FeatureSnapshot(track.baseline, len(track.collecting), list(track.window))

    def signals(self, snapshot: FeatureSnapshot) -> list[DriftSignal]:
        return signals_of(snapshot.baseline, snapshot.window, self.settings)


def freeze(observations: Sequence[AnswerObservation]) -> AnswerBaseline:
    grounded = [o.groundedness for o in observations if o.groundedness is not None]
    labels = [o.label for o in observations if o.label is not None]
    retrieve = [o.retrieve_ms for o in observations if o.retrieve_ms]
    generate = [o.generate_ms for o in observations if o.generate_ms]
    return AnswerBaseline(
        n=len(observations),
        groundedness=freeze_bins(grounded) if grounded else None,
        length=freeze_bins([o.length for o in observations]),
        withheld_rate=sum(o.withheld for o in observations) / len(observations),
        labels=label_shares(labels) if labels else None,
        tokens=freeze_bins([o.tokens for o in observations]),
        total=freeze_bins([o.total_ms for o in observations]),
        retrieve=freeze_bins(retrieve) if retrieve else None,
        generate=freeze_bins(generate) if generate else None,
    )


def label_shares(labels: Sequence[str]) -> dict[str, float]:
    counts = Counter(labels)
    kept = dict(counts.most_common(MAX_LABELS))
    other = len(labels) - sum(kept.values())
    if other:
        kept[OTHER] = other
    return {label: count / len(labels) for label, count in kept.items()}


def signals_of(
    baseline: AnswerBaseline | None,
    window: Sequence[AnswerObservation],
    settings: DriftSection,
) -> list[DriftSignal]:
    values: dict[str, float | None] = dict.fromkeys(
        (
            "answer_groundedness_psi",
            "answer_length_psi",
            "answer_withheld_rate_increase",
            "answer_label_chi2",
            "cost_tokens_psi",
            "latency_total_psi",
            "latency_retrieve_psi",
            "latency_generate_psi",
        )
    )
    if baseline is not None and len(window) >= settings.min_window:
        grounded = [o.groundedness for o in window if o.groundedness is not None]
        if baseline.groundedness is not None and grounded:
            values["answer_groundedness_psi"] = psi(baseline.groundedness, grounded)
        values["answer_length_psi"] = psi(baseline.length, [o.length for o in window])
        withheld = sum(o.withheld for o in window) / len(window)
        values["answer_withheld_rate_increase"] = withheld - baseline.withheld_rate
        labels = [o.label for o in window if o.label is not None]
        if baseline.labels is not None and labels:
            counts = Counter(label if label in baseline.labels else OTHER for label in labels)
            p = chi_square_p(baseline.labels, counts)
            values["answer_label_chi2"] = min(-math.log10(max(p, 1e-300)), 300.0)
        values["cost_tokens_psi"] = psi(baseline.tokens, [o.tokens for o in window])
        values["latency_total_psi"] = psi(baseline.total, [o.total_ms for o in window])
        retrieve = [o.retrieve_ms for o in window if o.retrieve_ms]
        if baseline.retrieve is not None and retrieve:
            values["latency_retrieve_psi"] = psi(baseline.retrieve, retrieve)
        generate = [o.generate_ms for o in window if o.generate_ms]
        if baseline.generate is not None and generate:
            values["latency_generate_psi"] = psi(baseline.generate, generate)
    thresholds = {
        "answer_withheld_rate_increase": settings.withheld_rate_increase_threshold,
        "answer_label_chi2": settings.label_chi2_threshold,
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
