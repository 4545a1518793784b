"""A feature's drift: the gateway's answer, cost and latency signals composed with the
retriever's query and retrieval signals for the feature's collection; exported every
`drift.poll_s`."""

from __future__ import annotations

import logging

from trivium.common.aio import Periodic
from trivium.common.contracts.drift import (
    BaselineReset,
    CollectionDrift,
    DriftSignal,
    FeatureDrift,
)
from trivium.common.errors import TriviumError
from trivium.gateway.clients import RetrieverClient
from trivium.gateway.config import DriftSection
from trivium.gateway.drift.metrics import DRIFT_ALERTS, DRIFT_SCORE, DRIFT_THRESHOLD
from trivium.gateway.drift.monitor import AnswerDriftMonitor
from trivium.gateway.policy import Feature, PolicyHolder

__all__ = ("DriftService",)

log = logging.getLogger(__name__)


class DriftService:
    def __init__(
        self,
        settings: DriftSection,
        monitor: AnswerDriftMonitor,
        retriever: RetrieverClient,
        policies: PolicyHolder,
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.retriever = retriever
        self.policies = policies
        self._drifting: set[tuple[str, str]] = set()
        self._exported: set[tuple[str, str]] = set()
        self._loop = Periodic("drift export", settings.poll_s, self.export, log)

    def start(self) -> None:
        if self.settings.enabled:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def report(self, name: str, feature: Feature) -> FeatureDrift:
        snapshot = self.monitor.snapshot(name)
        signals = self.monitor.signals(snapshot)
        retrieval, error = await self._retrieval(feature, name)
        baseline = snapshot.baseline
        return FeatureDrift(
            feature=name,
            baseline="frozen" if baseline is not None else "collecting",
            baseline_n=baseline.n if baseline is not None else snapshot.collecting,
            baseline_size=self.settings.baseline_size,
            window_n=len(snapshot.window),
            window_size=self.settings.window_size,
            signals=signals + (retrieval.signals if retrieval is not None else []),
            clusters=retrieval.clusters if retrieval is not None else [],
            retrieval=retrieval,
            retrieval_error=error,
        )

    async def reset(self, name: str, feature: Feature, why: str) -> BaselineReset:
        """The feature's answers, and every mode of its collection, collect a new baseline."""
        self.monitor.reset(name)
        reset, error = ["gateway"], None
        retrieval = feature.arm(name).retrieval
        if retrieval is not None:
            try:
                tracks = await self.retriever.reset_drift(retrieval.collection)
                reset += [f"retriever:{track}" for track in tracks]
            except TriviumError as exc:
                error = str(exc)
        log.info(
            "drift baseline reset",
            extra={"feature": name, "why": why, "reset": reset, "retrieval_error": error},
        )
        return BaselineReset(feature=name, reset=reset, retrieval_error=error)

    async def promoted(self, name: str) -> None:
        """A rollout completed: the promoted variant's requests make the new baseline."""
        feature = self.policies.current.policy.features.get(name)
        if feature is not None:
            await self.reset(name, feature, why="promoted")

    async def _retrieval(
        self, feature: Feature, name: str
    ) -> tuple[CollectionDrift | None, str | None]:
        retrieval = feature.arm(name).retrieval
        if retrieval is None:
            return None, None
        try:
            return await self.retriever.drift(retrieval.collection, retrieval.mode), None
        except TriviumError as exc:
            return None, str(exc)

    async def export(self) -> None:
        """Every feature's signals into `trivium_drift_score`; a signal that starts drifting
        counts one `trivium_drift_alerts_total`."""
        policy = self.policies.current.policy
        self.monitor.retain(list(policy.features))
        seen: set[tuple[str, str]] = set()
        for name, feature in policy.features.items():
            report = await self.report(name, feature)
            for signal in report.signals:
                if signal.value is not None:
                    seen.add((name, signal.name))
                    self._set(name, signal)
        for gone in self._exported - seen:
            DRIFT_SCORE.remove(*gone)
            DRIFT_THRESHOLD.remove(*gone)
            self._drifting.discard(gone)
        self._exported = seen

    def _set(self, name: str, signal: DriftSignal) -> None:
        key = (name, signal.name)
        assert signal.value is not None
        DRIFT_SCORE.labels(*key).set(signal.value)
        DRIFT_THRESHOLD.labels(*key).set(signal.threshold)
        alerts = DRIFT_ALERTS.labels(*key)  # exported from 0, so increase() sees the first
        if signal.drifting and key not in self._drifting:
            self._drifting.add(key)
            alerts.inc()
            log.warning(
                "drift",
                extra={
                    "feature": name,
                    "signal": signal.name,
                    "value": signal.value,
                    "threshold": signal.threshold,
                },
            )
        elif not signal.drifting:
            self._drifting.discard(key)
