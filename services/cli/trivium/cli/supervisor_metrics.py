"""The supervisor's Prometheus endpoint: restarts and liveness of each child of `trivium up`.

Served by the `trivium up` process itself on `up.metrics_host:up.metrics_port` (a scrape
target of its own, like any exporter), from a registry of its own so nothing else leaks in.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ("SupervisorMetrics",)


class SupervisorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.restarts = Counter(
            "trivium_supervisor_restarts_total",
            "Restarts of a supervised process after it exited or stopped answering.",
            ["service"],
            registry=self.registry,
        )
        self.up = Gauge(
            "trivium_supervisor_child_up",
            "1 while the supervised process runs and answers its health check.",
            ["service"],
            registry=self.registry,
        )
        self.backoff = Gauge(
            "trivium_supervisor_backoff_seconds",
            "The wait before the current restart attempt of a supervised process (0: none).",
            ["service"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None

    def track(self, service: str) -> None:
        """Show `service` in every series from the start (a counter that appears only on the
        first restart breaks `increase()`)."""
        self.restarts.labels(service=service)
        self.up.labels(service=service).set(0)
        self.backoff.labels(service=service).set(0)

    def serve(self, host: str, port: int) -> str:
        """Serve /metrics in a daemon thread; returns its URL (port 0: a free port)."""
        server, _ = start_http_server(port, host, registry=self.registry)
        self._server = server
        return f"http://{host}:{server.server_port}/metrics"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
