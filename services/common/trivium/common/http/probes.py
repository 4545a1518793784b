"""What every service exposes to operators: liveness and HTTP metrics with bounded labels."""

from __future__ import annotations

from litestar import get
from litestar.middleware import DefineMiddleware
from litestar.plugins.prometheus import PrometheusController as _PrometheusController
from litestar.types import Middleware

from trivium.common.http.metrics import HttpMetricsMiddleware

__all__ = ("PrometheusController", "healthz", "http_metrics_middleware")


class PrometheusController(_PrometheusController):
    """`/metrics` in Prometheus' text format: for operators, like the probes, not in the API
    schema."""

    include_in_schema = False


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Alive: the event loop answers."""
    return {"status": "ok"}


def http_metrics_middleware(service: str) -> Middleware:
    """`trivium_http_*` per route template (not raw path), method and status."""
    return DefineMiddleware(HttpMetricsMiddleware, app_name=f"trivium-{service}")
