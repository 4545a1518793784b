"""Why a call to an upstream failed, in a form the invoke pipeline can act on."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ("UPSTREAM_ERROR_KINDS", "UpstreamError", "UpstreamErrorKind")

UpstreamErrorKind = Literal[
    "connect",
    "timeout",
    "rate_limited",
    "backpressure",
    "server_error",
    "client_error",
    "circuit_open",
    "overloaded",
    "protocol",
]
"""`rate_limited` (429) and `backpressure` (503, e.g. a full queue) are the upstream asking for
less; `overloaded` is the gateway shedding a call beyond the upstream's concurrency limit."""
UPSTREAM_ERROR_KINDS: tuple[UpstreamErrorKind, ...] = get_args(UpstreamErrorKind)

_HTTP_STATUS: dict[UpstreamErrorKind, int] = {
    "timeout": 504,
    "circuit_open": 503,
    "overloaded": 503,
    "rate_limited": 503,
    "backpressure": 503,
    "connect": 503,
}


class UpstreamError(Exception):
    """One upstream call's failure: what kind, the upstream's status, when to try again."""

    def __init__(
        self,
        upstream: str,
        kind: UpstreamErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"upstream {upstream!r}: {kind}: {message}")
        self.upstream = upstream
        self.kind: UpstreamErrorKind = kind
        self.message = message
        self.status = status
        """The upstream's HTTP status, when it answered with one."""
        self.retry_after_s = retry_after_s
        """From the upstream's Retry-After, the time left on an open circuit, or a shed's."""

    @property
    def http_status(self) -> int:
        """The status the gateway answers with: 504 timeout, 503 unavailable, else 502."""
        return _HTTP_STATUS.get(self.kind, 502)
