"""Invoke errors callers see, and how upstream and retriever failures map onto HTTP."""

from __future__ import annotations

import math

from trivium.common.errors import (
    BadGatewayError,
    GatewayTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    TriviumError,
    UnavailableError,
)
from trivium.gateway.clients.retriever import RetrievalError
from trivium.gateway.clients.upstream import UpstreamError

__all__ = (
    "InputTooLargeError",
    "OverloadedError",
    "UnknownFeatureError",
    "failure_error",
    "failure_reason",
)


class UnknownFeatureError(NotFoundError):
    code = "unknown_feature"


class InputTooLargeError(PayloadTooLargeError):
    code = "input_too_large"


class OverloadedError(UnavailableError):
    code = "overloaded"


def failure_reason(exc: UpstreamError | RetrievalError) -> str:
    """A bounded label: the upstream error kind, or the retriever's reason."""
    return exc.kind if isinstance(exc, UpstreamError) else exc.reason


def failure_error(feature: str, exc: UpstreamError | RetrievalError) -> TriviumError:
    """The error a caller gets when a feature's last road failed this way."""
    if isinstance(exc, RetrievalError):
        if exc.reason == "timeout":
            return GatewayTimeoutError(f"{feature}: retrieval timed out", field="retrieval")
        return UnavailableError(f"{feature}: {exc.message}", retry_after_s=1, field="retrieval")
    retry = math.ceil(exc.retry_after_s) if exc.retry_after_s is not None else 1
    message = f"{feature}: upstream {exc.upstream} failed ({exc.kind}): {exc.message}"
    extra = {"upstream": exc.upstream, "upstream_error": exc.kind}
    if exc.kind == "overloaded":
        return OverloadedError(message, retry_after_s=retry, extra=extra)
    if exc.http_status == 504:
        return GatewayTimeoutError(message, retry_after_s=retry, extra=extra)
    if exc.http_status == 503:
        return UnavailableError(message, retry_after_s=retry, extra=extra)
    return BadGatewayError(message, extra=extra)
