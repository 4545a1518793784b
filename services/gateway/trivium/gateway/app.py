"""The gateway application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig

from trivium.common.http.probes import PrometheusController, healthz, http_metrics_middleware
from trivium.common.http.problems import EXCEPTION_HANDLERS
from trivium.common.http.request_id import RequestIdMiddleware
from trivium.common.redis import open_redis
from trivium.gateway.config import GatewaySettings
from trivium.gateway.health import readyz
from trivium.gateway.policy import LoadedPolicy, PolicyController, PolicyHolder
from trivium.gateway.templates import TemplateController
from trivium.registry import TEMPLATE_KIND, Registry, TemplateRenderer

__all__ = ("create_app",)

log = logging.getLogger(__name__)


def provide_templates(state: State) -> Registry:
    registry: Registry = state.templates
    return registry


def provide_renderer(state: State) -> TemplateRenderer:
    renderer: TemplateRenderer = state.renderer
    return renderer


def provide_policy_holder(state: State) -> PolicyHolder:
    holder: PolicyHolder = state.policy_holder
    return holder


def provide_policy(state: State) -> LoadedPolicy:
    """The policy active when the request starts; a reload during the request does not change it."""
    holder: PolicyHolder = state.policy_holder
    return holder.current


def create_app(settings: GatewaySettings | None = None) -> Litestar:
    settings = settings or GatewaySettings()
    policy_holder = PolicyHolder(settings.gateway.policy_file, settings.gateway.policy_poll_s)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_redis(settings.redis, settings.data_dir) as client:
            templates = Registry(client, TEMPLATE_KIND, settings.registry)
            await templates.start()
            app.state.templates = templates
            if not settings.gateway.admin_tokens:
                log.warning("no admin tokens configured: registry writes are open")
            log.info(
                "gateway ready",
                extra={
                    "redis": settings.redis.url or "embedded",
                    "policy_hash": policy_holder.current.hash,
                },
            )
            policy_holder.start()
            try:
                yield
            finally:
                await policy_holder.stop()
                await templates.close()

    return Litestar(
        route_handlers=[
            TemplateController,
            PolicyController,
            PrometheusController,
            healthz,
            readyz,
        ],
        dependencies={
            "templates": Provide(provide_templates, sync_to_thread=False),
            "renderer": Provide(provide_renderer, sync_to_thread=False),
            "policy": Provide(provide_policy, sync_to_thread=False),
            "policy_holder": Provide(provide_policy_holder, sync_to_thread=False),
        },
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "renderer": TemplateRenderer(),
                "policy_holder": policy_holder,
                "admin_tokens": settings.gateway.admin_tokens,
            }
        ),
        middleware=[RequestIdMiddleware, http_metrics_middleware("gateway")],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.gateway.max_request_bytes,
        openapi_config=OpenAPIConfig(title="Trivium gateway", version="0.1.0", path="/schema"),
        logging_config=None,
    )
