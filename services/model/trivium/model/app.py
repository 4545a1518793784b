"""The model service application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client import Gauge

from trivium.common.aio import cancel_and_wait
from trivium.common.http.exposure import require_admin_credential
from trivium.common.http.openai_errors import OPENAI_EXCEPTION_HANDLERS
from trivium.common.http.openapi import (
    SchemaPatch,
    add_content,
    answer_options_with_every_method,
    define,
    describe_structs,
    openapi_config,
    server_sent_event,
    unions_as_any_of,
)
from trivium.common.http.probes import PrometheusController, healthz, http_metrics_middleware
from trivium.common.http.request_id import RequestIdMiddleware
from trivium.common.http.strict_body import decode_body_strictly
from trivium.common.redis import open_redis
from trivium.model.adapters import ADAPTER_KIND, AdapterStore
from trivium.model.adapters.manager import AdapterManager
from trivium.model.adapters.routes import (
    AdapterController,
    PromoteRequest,
    RegisterRequest,
    RollbackRequest,
    SelectorRequest,
)
from trivium.model.config import ModelSettings
from trivium.model.engines.factory import build_engine
from trivium.model.engines.transformers_engine import TransformersEngine
from trivium.model.health import readyz
from trivium.model.openai.protocol import ChatCompletionRequest, CompletionRequest
from trivium.model.openai.routes import OpenAIController
from trivium.model.openai.serving import OpenAIServing
from trivium.model.vllm.engine import VllmEngine
from trivium.model.vllm.proxy import VllmOpenAIController, VllmProxy
from trivium.registry import Registry

__all__ = ("create_app",)

log = logging.getLogger(__name__)
QUEUE_DEPTH = Gauge("trivium_model_queue_depth", "Requests waiting for a batch slot.")


def _from_state(key: str) -> Provide:
    def provide(state: State) -> object:
        return state[key]

    return Provide(provide, sync_to_thread=False)


def create_app(settings: ModelSettings | None = None) -> Litestar:
    settings = settings or ModelSettings()
    section = settings.model
    require_admin_credential("model", section.host, section.admin_tokens, section.insecure)
    on_vllm = section.engine == "vllm"

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine: TransformersEngine | VllmEngine
        engine = VllmEngine(settings) if on_vllm else build_engine(settings)
        await engine.start()
        QUEUE_DEPTH.set_function(lambda: engine.queue_depth)
        try:
            async with open_redis(settings.redis, settings.data_dir) as client:
                registry = Registry(client, ADAPTER_KIND, settings.registry)
                await registry.start()
                adapters = AdapterManager(registry, engine, settings.model.served_model_name)
                try:
                    await adapters.reconcile()
                except Exception:
                    log.exception("initial adapter reconcile failed; serving the base model")
                reconciler = asyncio.create_task(
                    adapters.run_forever(settings.model.reconcile_interval_s), name="reconcile"
                )
                app.state.update(
                    adapters=adapters, store=AdapterStore(settings.adapter_store_dir, registry)
                )
                if isinstance(engine, VllmEngine):
                    app.state.proxy = VllmProxy(engine, adapters)
                else:
                    timeout = settings.model.request_timeout_s
                    app.state.serving = OpenAIServing(engine, adapters, timeout)
                log.info("model service ready", extra={"engine": settings.model.engine})
                try:
                    yield
                finally:
                    await cancel_and_wait(reconciler)
                    await registry.close()
        finally:
            await engine.close()

    openai_routes = VllmOpenAIController if on_vllm else OpenAIController
    app = Litestar(
        route_handlers=[openai_routes, AdapterController, PrometheusController, healthz, readyz],
        dependencies={
            "adapters": _from_state("adapters"),
            "store": _from_state("store"),
            "serving": _from_state("serving"),
            "proxy": _from_state("proxy"),
        },
        lifespan=[lifespan],
        state=State({"settings": settings, "admin_tokens": settings.model.admin_tokens}),
        middleware=[RequestIdMiddleware, http_metrics_middleware("model")],
        exception_handlers=OPENAI_EXCEPTION_HANDLERS,
        before_request=decode_body_strictly,
        request_max_body_size=settings.model.max_request_bytes,
        openapi_config=openapi_config("Trivium model service", *SCHEMA_PATCHES),
        logging_config=None,
    )
    return answer_options_with_every_method(app)


_NON_EMPTY = {"type": "string", "minLength": 1}
_STOP = {
    "anyOf": [
        _NON_EMPTY,
        {"type": "array", "items": _NON_EMPTY, "maxItems": 4},
        {"type": "null"},
    ]
}
_PROMPT = {
    "anyOf": [_NON_EMPTY, {"type": "array", "items": _NON_EMPTY, "minItems": 1, "maxItems": 1}]
}
_EVENTS = server_sent_event("a chunk as JSON, an `{error}` as JSON, or `[DONE]` (the last)")
SCHEMA_PATCHES: list[SchemaPatch] = [
    describe_structs(
        ChatCompletionRequest,
        CompletionRequest,
        RegisterRequest,
        SelectorRequest,
        PromoteRequest,
        RollbackRequest,
    ),
    unions_as_any_of,
    define("ChatCompletionRequest", "stop", _STOP),
    define("CompletionRequest", "stop", _STOP),
    define("CompletionRequest", "prompt", _PROMPT),
    add_content("/v1/chat/completions", "post", 200, "text/event-stream", _EVENTS),
    add_content("/v1/completions", "post", 200, "text/event-stream", _EVENTS),
]
"""What the OpenAPI schema cannot learn from the types: the streamed answers, the unions of
constrained strings (Litestar drops their bounds). The OpenAI requests accept unknown fields on
purpose: clients send many."""
