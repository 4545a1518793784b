"""HTTP: the sliding-window summary of every replica's requests."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from trivium.gateway.telemetry.stats import StatsRecorder, StatsSummary

__all__ = ("StatsController",)


class StatsController(Controller):
    """`GET /v1/stats`; the app provides the `stats` dependency (a started `StatsRecorder`)."""

    path = "/v1/stats"
    tags = ["stats"]

    @get(
        summary="Count, error rate, P50/P95/P99 latency, mean cost and tokens per feature",
        description="503 `stats_unavailable` with Retry-After (`dependency: redis`) while the "
        "shared window cannot be read; never a partial answer.",
    )
    async def show(
        self,
        stats: NamedDependency[StatsRecorder],
        feature: Annotated[
            str | None,
            Parameter(
                description="only this feature (unknown: empty result)",
                pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
            ),
        ] = None,
    ) -> StatsSummary:
        return await stats.summary(feature)
