"""The model service's own measurements: per model (base or adapter name), bounded labels.

vLLM labels no latency per adapter, so the service measures per-adapter latency and tokens
itself, for both engines.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ("LATENCY", "REQUESTS", "TIME_TO_FIRST_TOKEN", "TOKENS")

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)

REQUESTS = Counter(
    "trivium_model_requests_total",
    "Model-service requests by model (base or adapter name), endpoint and outcome.",
    ["model", "endpoint", "status"],
)
LATENCY = Histogram(
    "trivium_model_request_duration_seconds",
    "Time from request to last token, by model.",
    ["model"],
    buckets=_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "trivium_model_time_to_first_token_seconds",
    "Time from request to first generated text, by model.",
    ["model"],
    buckets=_BUCKETS,
)
TOKENS = Counter(
    "trivium_model_tokens_total",
    "Prompt and completion tokens, by model.",
    ["model", "kind"],
)
