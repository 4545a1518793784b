"""The gateway's process settings (`gateway:` in the config file, `TRIVIUM_GATEWAY__*` in env)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from trivium.common.settings import Section, TriviumSettings

__all__ = (
    "AuthSection",
    "CallerLimitsSection",
    "DriftSection",
    "FeedbackSection",
    "GatewaySection",
    "GatewaySettings",
    "ResponseCacheSection",
    "RetrieverClientSection",
    "RolloutsSection",
    "StatsSection",
    "TracingSection",
    "UpstreamClientSection",
)


class _CircuitSettings(Section):
    """The circuit breaker's timing, the same for upstreams and the retriever."""

    breaker_open_s: float = Field(
        default=5.0, gt=0, description="how long an open circuit refuses before one probe"
    )
    breaker_probe_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="how long a half-open probe holds the only slot; then the next call probes",
    )


class UpstreamClientSection(_CircuitSettings):
    """How the gateway talks to every OpenAI-compatible upstream (one pooled client each)."""

    max_connections: int = Field(default=100, gt=0, description="pooled connections per upstream")
    max_retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="retries of connect errors, 429 and 502/503 before any byte streamed",
    )
    backoff_base_s: float = Field(default=0.05, ge=0, description="first retry's mean delay")
    backoff_max_s: float = Field(default=1.0, ge=0)
    breaker_failures: int = Field(
        default=5,
        gt=0,
        description="consecutive failures (connect, timeout, 5xx but 503, protocol) that open "
        "an upstream's circuit; 503 and 429 are backpressure and never count",
    )
    concurrency_min: int = Field(
        default=2, gt=0, description="the adaptive concurrency limit never falls below this"
    )
    concurrency_initial: int = Field(
        default=32, gt=0, description="calls at once per upstream before any feedback"
    )
    concurrency_max: int = Field(
        default=256,
        gt=0,
        description="the adaptive limit never grows past this (beyond max_connections, calls "
        "wait for a pooled connection)",
    )
    concurrency_decrease_ratio: float = Field(
        default=0.75,
        gt=0,
        lt=1,
        description="the limit is multiplied by this on a 503, a 429 or a timeout",
    )

    @model_validator(mode="after")
    def _limits_in_order(self) -> UpstreamClientSection:
        if not self.concurrency_min <= self.concurrency_initial <= self.concurrency_max:
            raise ValueError(
                "upstream: need concurrency_min <= concurrency_initial <= concurrency_max"
            )
        return self


class RetrieverClientSection(_CircuitSettings):
    """How the gateway searches the retriever (the `rag` roads)."""

    url: str = Field(default="http://127.0.0.1:8200", description="the retriever's base URL")
    timeout_s: float = Field(default=10.0, gt=0, description="the most one search may take")
    budget_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="the share of the time left before the feature's deadline a search may "
        "spend (never more than timeout_s), so that a fallback road keeps the rest",
    )
    max_connections: int = Field(default=100, gt=0)
    breaker_failures: int = Field(
        default=3,
        gt=0,
        description="consecutive timeouts, connection failures or 5xx that open the circuit",
    )


class ResponseCacheSection(Section):
    """Exact-match answers in Redis, for features whose policy sets `cache`."""

    default_ttl_s: int = Field(default=300, gt=0)
    max_entry_bytes: int = Field(default=256 * 1024, gt=0)
    semantic_lookup_timeout_s: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="the most a semantic cache lookup (at the retriever) may take; then a miss",
    )


class StatsSection(Section):
    """The sliding window behind `GET /v1/stats`, shared by every replica through Redis."""

    window_s: int = Field(default=300, gt=0)
    slot_s: int = Field(default=10, gt=0)
    flush_s: float = Field(default=1.0, gt=0, description="how often a process flushes to Redis")


class DriftSection(Section):
    """Answer, cost and latency drift per feature, and the retriever's query drift
    (`trivium.gateway.drift`)."""

    enabled: bool = True
    baseline_size: int = Field(
        default=200, ge=20, le=5000, description="answers frozen as the baseline after a reset"
    )
    window_size: int = Field(default=200, ge=20, le=5000, description="the latest answers")
    min_window: int = Field(default=50, ge=10, description="answers before signals are judged")
    poll_s: float = Field(
        default=15.0, gt=0, description="how often the signals are computed and exported"
    )
    psi_threshold: float = Field(default=0.25, gt=0)
    withheld_rate_increase_threshold: float = Field(
        default=0.1, gt=0, le=1, description="window's withheld/refused share minus baseline's"
    )
    label_chi2_threshold: float = Field(
        default=3.0, gt=0, description="-log10 of the chi-square p-value (3: p < 0.001)"
    )


class RolloutsSection(Section):
    """The canary rollout controller (`trivium.gateway.rollouts`)."""

    tick_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often each replica reads the rollouts' state (the weights it assigns "
        "by) and the lease holder judges and moves them",
    )
    lease_ttl_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="how long the driving replica's lease outlives its last renewal: another "
        "replica takes over this long after it dies",
    )

    @model_validator(mode="after")
    def _renewed_in_time(self) -> RolloutsSection:
        if self.lease_ttl_s <= 2 * self.tick_s:
            raise ValueError("rollouts: lease_ttl_s must be more than twice tick_s")
        return self


class ReviewsSection(Section):
    """The human review queue (`/v1/reviews`, the page at `/reviews`)."""

    retention_s: int = Field(
        default=30 * 24 * 3600,
        ge=3600,
        le=365 * 24 * 3600,
        description="how long a review (case, decision) is kept, decided or not; its audit "
        "entries too",
    )
    max_per_feature: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description="reviews kept per feature; a new one evicts the oldest decided one, and "
        "is refused when all are pending (a held answer then answers 503)",
    )
    poll_s: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="how often each replica reads the queue depth and oldest pending age "
        "per feature for its gauges",
    )


class FeedbackSection(Section):
    """Answer records and the product's feedback on them (`POST /v1/feedback`)."""

    retention_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        le=90 * 24 * 3600,
        description="how long an answer's record (feature, variant, route, versions, policy "
        "hash, input) is kept for feedback; older answers get 410",
    )
    flush_s: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="how often a process writes the answer records it buffered (one "
        "pipelined round trip); feedback through the replica that served the answer never "
        "waits for it",
    )
    max_input_bytes: int = Field(
        default=4096,
        ge=0,
        le=64 * 1024,
        description="an answer's input (variables or messages, as JSON) is kept with its "
        "record up to this size, for the corrections export; larger, or 0: not kept",
    )
    max_buffered: int = Field(
        default=50_000, gt=0, description="records kept in memory while Redis does not answer"
    )


class TracingSection(Section):
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); "
        "unset: OTEL_EXPORTER_OTLP_ENDPOINT if set, else spans are not exported",
    )
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    service_name: str = "trivium-gateway"


class AuthSection(Section):
    """Who may call the gateway (see trivium.gateway.callers)."""

    mode: Literal["keys", "open"] = Field(
        default="keys",
        description="keys: every route but health/metrics/schema needs an API key (or an "
        "admin token) with the route's scope; open: feature routes and reads take no "
        "credential (development only: refused on a non-loopback host unless set explicitly)",
    )
    pepper: SecretStr | None = Field(
        default=None,
        description="server-side secret mixed into every key's stored hash (HMAC-SHA256); "
        "the same on every replica. Unset: a random one kept in <data_dir>/auth/pepper "
        "(loopback only)",
    )
    key_cache_entries: int = Field(default=100_000, gt=0, description="keys cached per process")


class CallerLimitsSection(Section):
    """How per-key rate limits and budgets are counted (cluster-wide, in Redis)."""

    window_s: float = Field(
        default=60.0,
        gt=0,
        description="the sliding window of rpm/tpm limits (60: per minute; tests shorten it)",
    )
    settle_flush_s: float = Field(
        default=0.05,
        gt=0,
        description="how long the tokens and cost of a finished request may wait to ride on "
        "the key's next admission before being written on their own",
    )
    redis_timeout_s: float = Field(
        default=0.25, gt=0, description="an admission slower than this counts as Redis down"
    )


class GatewaySection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="worker processes on one port")
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    max_in_flight: int = Field(
        default=256, gt=0, description="requests served at once; beyond it: 503 with Retry-After"
    )
    overload_retry_after_s: int = Field(default=1, ge=1)
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    admin_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="actor name -> bootstrap admin token: a credential with every admin "
        "scope (read, templates:write, policy:reload, keys:admin; not invoke). In auth mode "
        "open with none set, admin writes are open",
    )
    auth: AuthSection = AuthSection()
    limits: CallerLimitsSection = CallerLimitsSection()
    policy_file: Path | None = Field(
        default=None,
        description="the routing policy YAML (hot-reloaded); unset or missing: no features",
    )
    policy_poll_s: float = Field(default=1.0, gt=0, description="how often to check the file")
    upstream: UpstreamClientSection = UpstreamClientSection()
    retriever: RetrieverClientSection = RetrieverClientSection()
    cache: ResponseCacheSection = ResponseCacheSection()
    stats: StatsSection = StatsSection()
    feedback: FeedbackSection = FeedbackSection()
    reviews: ReviewsSection = ReviewsSection()
    rollouts: RolloutsSection = RolloutsSection()
    drift: DriftSection = DriftSection()
    tracing: TracingSection = TracingSection()


class GatewaySettings(TriviumSettings):
    gateway: GatewaySection = GatewaySection()
