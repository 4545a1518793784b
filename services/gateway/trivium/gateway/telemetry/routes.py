"""HTTP: the sliding-window summary of every replica's requests."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from trivium.gateway.callers.auth import require_scope
from trivium.gateway.route_docs import native_errors, scoped
from trivium.gateway.telemetry.stats import StatsRecorder, StatsSummary

__all__ = ("StatsController",)


class StatsController(Controller):
    """`GET /v1/stats`; the app provides the `stats` dependency (a started `StatsRecorder`)."""

    path = "/v1/stats"
    tags = ["stats"]
    guards = [require_scope]

    @get(
        opt={"scope": "read"},
        security=scoped("read"),
        responses=native_errors(400),
        summary="Count, error rate, P50/P95/P99 latency, mean cost and tokens per feature "
        "(and per caller key with group_by=key)",
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
        group_by: Annotated[
            Literal["key"] | None,
            Parameter(description="key: add per caller key name totals (`keys`)"),
        ] = None,
    ) -> StatsSummary:
        return await stats.summary(feature, group_by_key=group_by == "key")
