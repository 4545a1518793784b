"""Errors of the vLLM integration, on the common hierarchy (the HTTP status lives on the class).

* `VllmUnavailableError` (503, Retry-After): vLLM cannot be reached, refused the connection,
  dropped it, or is still starting; the caller may retry.
* `UpstreamTimeoutError` (504): vLLM accepted the request but did not answer in time.
* `VllmResponseError` (502): vLLM answered a management call (adapters, model list) with an
  error we cannot treat as success; `upstream_status` and the upstream message are kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from trivium.common.errors import TriviumError, UnavailableError

__all__ = ("UpstreamTimeoutError", "VllmResponseError", "VllmUnavailableError")


class VllmUnavailableError(UnavailableError):
    code = "vllm_unavailable"


class UpstreamTimeoutError(TriviumError):
    status_code: ClassVar[int] = 504
    code = "upstream_timeout"
    title = "Upstream timeout"


class VllmResponseError(TriviumError):
    status_code: ClassVar[int] = 502
    code = "vllm_error"
    title = "Bad gateway"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, field=field, extra=extra)
        self.upstream_status = upstream_status
