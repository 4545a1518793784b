"""The gateway application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from trivium.common.http.openapi import answer_options_with_every_method
from trivium.common.http.probes import PrometheusController, healthz, http_metrics_middleware
from trivium.common.http.problems import PROBLEM_EXCEPTION_HANDLERS
from trivium.common.http.request_id import RequestIdMiddleware
from trivium.common.redis import open_redis
from trivium.gateway.adapters import AdapterController
from trivium.gateway.callers import (
    Authenticator,
    KeyCache,
    KeyController,
    KeyStore,
    Limiter,
    check_exposure,
    load_pepper,
)
from trivium.gateway.clients import RetrieverClient, UpstreamPool
from trivium.gateway.config import GatewaySettings
from trivium.gateway.datasets import DatasetController
from trivium.gateway.decision.routes import DecisionController
from trivium.gateway.drift import AnswerDriftMonitor, DriftService
from trivium.gateway.drift.routes import DriftController
from trivium.gateway.feedback.records import AnswerLog
from trivium.gateway.feedback.routes import FeedbackController
from trivium.gateway.feedback.service import FeedbackService
from trivium.gateway.feedback.store import FeedbackStore
from trivium.gateway.health import readyz
from trivium.gateway.invoke import (
    Accountant,
    Admission,
    ChatCompletionsController,
    InvokeController,
    Invoker,
    Planner,
    ResponseCache,
    Serving,
    ShadowRunner,
    list_models,
)
from trivium.gateway.invoke.semantic_cache import SemanticCache
from trivium.gateway.openapi import gateway_openapi_config
from trivium.gateway.policy import LoadedPolicy, Policy, PolicyController, PolicyHolder
from trivium.gateway.reviews import ReviewController, ReviewQueue, ReviewStore
from trivium.gateway.reviews.page import ReviewPages
from trivium.gateway.rollouts import (
    Lease,
    RolloutController,
    RolloutRoutes,
    RolloutStore,
    replica_id,
)
from trivium.gateway.telemetry import KPI, StatsController, StatsRecorder, configure_tracing
from trivium.gateway.templates import TemplateController
from trivium.gateway.trials import TrialController, TrialStore
from trivium.registry import TEMPLATE_KIND, ReadOnlyKind, Registry, TemplateRenderer
from trivium.registry.cache import InvalidationListener
from trivium.registry.datasets import DatasetStore

__all__ = ("create_app",)

log = logging.getLogger(__name__)


def _state_getter(name: str) -> Provide:
    def provide(state: State) -> object:
        return state[name]

    return Provide(provide, sync_to_thread=False)


def provide_policy(state: State) -> LoadedPolicy:
    """The policy active when the request starts; a reload during the request does not change it."""
    holder: PolicyHolder = state.policy_holder
    return holder.current


def create_app(settings: GatewaySettings | None = None) -> Litestar:
    settings = settings or GatewaySettings()
    section = settings.gateway
    check_exposure(section)
    policy_holder = PolicyHolder(section.policy_file, section.policy_poll_s)
    renderer = TemplateRenderer()
    admission = Admission(section.max_in_flight, section.overload_retry_after_s, KPI)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        stop_tracing = configure_tracing(section.tracing)
        prefix = settings.registry.key_prefix
        upstreams = UpstreamPool(section.upstream)
        retriever = RetrieverClient.from_section(section.retriever)

        def open_upstreams(policy: Policy) -> None:
            upstreams.sync(policy.upstreams)

        open_upstreams(policy_holder.current.policy)
        policy_holder.before_swap(open_upstreams)
        async with open_redis(settings.redis, settings.data_dir) as client:
            templates = Registry(client, TEMPLATE_KIND, settings.registry)
            adapters = Registry(client, ReadOnlyKind("adapter"), settings.registry)
            stats = StatsRecorder(
                client,
                prefix=prefix,
                window_s=section.stats.window_s,
                slot_s=section.stats.slot_s,
                flush_s=section.stats.flush_s,
            )
            shadows = ShadowRunner(client, prefix, KPI)
            feedback = section.feedback
            answers = AnswerLog(
                client,
                prefix=prefix,
                retention_s=feedback.retention_s,
                flush_s=feedback.flush_s,
                max_input_bytes=feedback.max_input_bytes,
                max_buffered=feedback.max_buffered,
            )
            app.state.feedback = FeedbackService(
                FeedbackStore(client, prefix, answers), stats, feedback.retention_s
            )
            key_store = KeyStore(
                client, prefix, load_pepper(section.auth.pepper, settings.data_dir)
            )
            key_cache = KeyCache(key_store, section.auth.key_cache_entries)
            key_listener = InvalidationListener(client, key_store.channel, key_cache)
            authenticator = Authenticator(section.auth.mode, key_cache, section.admin_tokens)
            limiter = Limiter(
                client, prefix, section.limits.window_s, section.limits.settle_flush_s
            )
            review_store = ReviewStore(
                client,
                prefix,
                retention_s=section.reviews.retention_s,
                max_per_feature=section.reviews.max_per_feature,
            )
            reviews = ReviewQueue(
                review_store,
                poll_s=section.reviews.poll_s,
                policy=lambda: policy_holder.current.policy,
            )
            app.state.review_store = review_store
            app.state.key_store = key_store
            app.state.trial_store = TrialStore(client, prefix)
            app.state.authenticator = authenticator
            await key_listener.start()
            limiter.start()
            await templates.start()
            await adapters.start()
            stats.start()
            answers.start()
            await reviews.start()
            app.state.templates = templates
            app.state.adapters = adapters
            app.state.datasets = DatasetStore(client, settings.registry)
            app.state.stats = stats
            rollout_store = RolloutStore(client, prefix)
            rollouts = RolloutController(
                store=rollout_store,
                lease=Lease(
                    client,
                    rollout_store.lease_key,
                    rollout_store.fence_key,
                    replica_id(),
                    section.rollouts.lease_ttl_s,
                ),
                policies=policy_holder,
                stats=stats,
                tick_s=section.rollouts.tick_s,
                registries={"template": templates, "adapter": adapters},
            )
            app.state.rollouts = rollouts
            app.state.effective_weights = rollouts.effective
            planner = Planner(
                templates=templates,
                adapters=adapters,
                renderer=renderer,
                upstreams=upstreams,
                retriever=retriever,
                kpis=KPI,
            )
            drift_monitor = AnswerDriftMonitor(section.drift)
            drift = DriftService(section.drift, drift_monitor, retriever, policy_holder)
            app.state.drift = drift
            rollouts.on_completed = drift.promoted
            invoker = Invoker(
                planner=planner,
                admission=admission,
                accountant=Accountant(KPI, stats, answers, drift_monitor),
                cache=ResponseCache(client, section.cache.max_entry_bytes, KPI),
                cache_prefix=prefix,
                default_cache_ttl_s=section.cache.default_ttl_s,
                shadows=shadows,
                limiter=limiter,
                variants=rollouts.variants_for,
                semantic=SemanticCache(
                    retriever, KPI, lookup_timeout_s=section.cache.semantic_lookup_timeout_s
                ),
                reviews=reviews,
            )
            app.state.serving = Serving(invoker, policy_holder, authenticator)
            if section.auth.mode == "open":
                log.warning(
                    "auth.mode is open: feature routes and reads take no key"
                    + ("" if section.admin_tokens else "; admin writes are open too")
                )
            log.info(
                "gateway ready",
                extra={
                    "redis": settings.redis.url or "embedded",
                    "policy_hash": policy_holder.current.hash,
                    "upstreams": list(upstreams.names()),
                    "retriever": section.retriever.url,
                    "auth": section.auth.mode,
                },
            )
            policy_holder.start()
            rollouts.start()
            drift.start()
            try:
                yield
            finally:
                await drift.stop()
                await rollouts.stop()
                await policy_holder.stop()
                await shadows.drain(section.graceful_shutdown_s)
                await answers.stop()
                await reviews.stop()
                await stats.stop()
                await limiter.stop()
                await key_listener.stop()
                await upstreams.aclose()
                await retriever.aclose()
                await adapters.close()
                await templates.close()
                stop_tracing()

    app = Litestar(
        route_handlers=[
            InvokeController,
            ChatCompletionsController,
            list_models,
            TemplateController,
            AdapterController,
            DatasetController,
            KeyController,
            TrialController,
            PolicyController,
            RolloutRoutes,
            StatsController,
            FeedbackController,
            ReviewController,
            ReviewPages,
            DecisionController,
            DriftController,
            PrometheusController,
            healthz,
            readyz,
        ],
        dependencies={
            "templates": _state_getter("templates"),
            "adapters": _state_getter("adapters"),
            "datasets": _state_getter("datasets"),
            "renderer": _state_getter("renderer"),
            "policy": Provide(provide_policy, sync_to_thread=False),
            "policy_holder": _state_getter("policy_holder"),
            "stats": _state_getter("stats"),
        },
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "renderer": renderer,
                "policy_holder": policy_holder,
                "admin_tokens": section.admin_tokens,
            }
        ),
        middleware=[RequestIdMiddleware, http_metrics_middleware("gateway")],
        exception_handlers=PROBLEM_EXCEPTION_HANDLERS,
        request_max_body_size=section.max_request_bytes,
        openapi_config=gateway_openapi_config(section.auth.mode, bool(section.admin_tokens)),
        logging_config=None,
    )
    return answer_options_with_every_method(app)
