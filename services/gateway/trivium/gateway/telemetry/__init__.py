"""What the gateway measures: KPI series, the shared `/v1/stats` window and traces."""

from trivium.gateway.telemetry.metrics import KPI, KpiMetrics, KpiRecorder
from trivium.gateway.telemetry.routes import StatsController
from trivium.gateway.telemetry.stats import StatsRecorder, StatsSummary
from trivium.gateway.telemetry.tracing import configure_tracing, genai_attributes, span

__all__ = (
    "KPI",
    "KpiMetrics",
    "KpiRecorder",
    "StatsController",
    "StatsRecorder",
    "StatsSummary",
    "configure_tracing",
    "genai_attributes",
    "span",
)
