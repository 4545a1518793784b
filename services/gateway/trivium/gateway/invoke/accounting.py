"""What every finished request leaves behind: KPIs, the stats window, a log line, span lineage.

Accounting only reads: the answer's timings were fixed when it was built.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from trivium.common.errors import TriviumError
from trivium.gateway.callers import CALLER_METRICS
from trivium.gateway.feedback.records import AnswerLog
from trivium.gateway.invoke.call import Call
from trivium.gateway.invoke.schemas import InvokeResponse
from trivium.gateway.telemetry.metrics import KpiRecorder, RequestStatus, Stage
from trivium.gateway.telemetry.stats import StatsRecorder

if TYPE_CHECKING:
    from trivium.gateway.drift.monitor import AnswerDriftMonitor

__all__ = ("Accountant", "span_lineage", "status_of")

log = logging.getLogger("trivium.gateway.invoke")

STAGES: tuple[Stage, ...] = ("retrieve", "rerank", "render", "generate", "verify")


def status_of(exc: TriviumError) -> RequestStatus:
    """The caller's mistake (4xx) is `rejected`; the service's failure is `error`/`timeout`."""
    if exc.status_code < 500:
        return "rejected"
    return "timeout" if exc.status_code == 504 else "error"


class Accountant:
    def __init__(
        self,
        kpis: KpiRecorder,
        stats: StatsRecorder,
        answers: AnswerLog | None = None,
        drift: AnswerDriftMonitor | None = None,
    ) -> None:
        self.kpis = kpis
        self.stats = stats
        self.answers = answers
        """Each answer's record, for feedback (buffered; written in the background)."""
        self.drift = drift
        """Answer, cost and latency drift (in memory, no I/O)."""

    def record(self, call: Call, response: InvokeResponse | None, status: RequestStatus) -> None:
        """`call.feature_name` is one of the active policy's (metric labels stay bounded).

        A rejected request (the caller's mistake) is only counted: it stays out of the latency
        histograms, the overhead and the `/v1/stats` window, whose percentiles and success
        counts describe the requests the gateway served. Trial traffic is labelled
        `traffic="trial"` and never enters the `/v1/stats` window, which is production's."""
        seconds = time.perf_counter() - call.started
        feature, variant, traffic = call.feature_name, call.variant, call.traffic
        route: str = call.arm.route
        kpis = self.kpis
        self._per_key(call, response, status, seconds)
        if status == "rejected":
            kpis.rejected(feature, route, variant, traffic)
            if log.isEnabledFor(logging.INFO):
                self._log(call, response, route, status, seconds)
            return
        cost = 0.0
        tokens = 0
        if response is not None:
            route = response.route
            tokens, cost = response.usage.total_tokens, response.cost_usd
            self._answer_kpis(call, response)
        if traffic == "production":
            self._remember(call, response)
            if self.drift is not None and response is not None:
                needs = call.feature.requirements
                labelled = needs is not None and needs.output_format == "label"
                self.drift.observe(feature, response, labelled)
        kpis.request(feature, route, variant, status, seconds, traffic)
        kpis.overhead(feature, max(seconds - call.waited_s, 0.0))
        if traffic == "production":
            self.stats.observe(
                feature,
                route,
                variant,
                seconds,
                status not in ("error", "timeout"),
                cost,
                tokens,
                fallback=response is not None and response.fallback is not None,
                groundedness=response.groundedness if response is not None else None,
            )
        if log.isEnabledFor(logging.INFO):
            self._log(call, response, route, status, seconds)

    def _remember(self, call: Call, response: InvokeResponse | None) -> None:
        """The answer's record, for feedback (buffered; written in the background)."""
        if self.answers is not None and response is not None:
            self.answers.add(call.request, response)

    def _answer_kpis(self, call: Call, response: InvokeResponse) -> None:
        """Stages, groundedness, tokens, cost and verdict of an answer."""
        kpis, feature, traffic, route = self.kpis, call.feature_name, call.traffic, response.route
        if not response.cached:
            timings = response.timings_ms
            for stage in STAGES:
                value: float = getattr(timings, stage)
                if value:
                    kpis.stage(feature, stage, value / 1000, traffic)
            if response.groundedness is not None:
                kpis.groundedness(feature, response.groundedness, traffic)
        usage = response.usage
        if usage.total_tokens:
            kpis.tokens(feature, route, usage.prompt_tokens, usage.completion_tokens, traffic)
        if response.cost_usd:
            kpis.cost(feature, route, call.variant, response.cost_usd, traffic)
        if response.verdict is not None:
            kpis.verdict(feature, response.verdict, traffic)

    def _per_key(
        self,
        call: Call,
        response: InvokeResponse | None,
        status: RequestStatus,
        seconds: float,
    ) -> None:
        """Requests, tokens and cost per caller key name (metrics and the stats window)."""
        if call.caller.record is None:  # open mode, or an admin token: no key to account
            return
        usage = response.usage if response is not None else None
        cost = response.cost_usd if response is not None else 0.0
        prompt = usage.prompt_tokens if usage is not None else 0
        completion = usage.completion_tokens if usage is not None else 0
        CALLER_METRICS.served(call.caller.name, status, prompt, completion, cost)
        if status == "rejected" or call.request.trial is not None:  # out of the stats window
            return
        self.stats.observe_key(
            call.caller.name,
            seconds,
            status not in ("error", "timeout"),
            cost,
            prompt + completion,
        )

    @staticmethod
    def _log(
        call: Call,
        response: InvokeResponse | None,
        route: str,
        status: RequestStatus,
        seconds: float,
    ) -> None:
        lineage = response.lineage if response is not None else None
        fallback = response.fallback if response is not None else None
        log.info(
            "invoke",
            extra={
                "feature": call.feature_name,
                "caller": call.caller.name,
                "route": route,
                "variant": call.variant,
                "status": status,
                "ms": round(seconds * 1000, 2),
                "overhead_ms": round((seconds - call.waited_s) * 1000, 3),
                "policy_hash": call.loaded.hash,
                "template": lineage.template if lineage else None,
                "adapter": lineage.adapter if lineage else None,
                "retriever_index": lineage.retriever_index if lineage else None,
                "fallback": fallback.from_route if fallback else None,
                "cached": response.cached if response is not None else False,
                "trial": call.request.trial.id if call.request.trial is not None else None,
                "trial_arm": call.request.trial.arm if call.request.trial is not None else None,
            },
        )


def span_lineage(response: InvokeResponse) -> dict[str, str | bool]:
    """The root span's attributes once the answer is known."""
    lineage = response.lineage
    attributes: dict[str, str | bool] = {
        "trivium.answer_id": response.id,
        "trivium.route": response.route,
        "trivium.cached": response.cached,
    }
    for key, value in (
        ("trivium.template", lineage.template),
        ("trivium.adapter", lineage.adapter),
        ("trivium.retriever_index", lineage.retriever_index),
        ("trivium.upstream", lineage.upstream),
        ("trivium.fallback_from", response.fallback.from_route if response.fallback else None),
    ):
        if value is not None:
            attributes[key] = value
    return attributes
