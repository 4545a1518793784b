"""Serving a feature's request: the roads, fallback, shadows, cache, and the HTTP routes."""

from trivium.gateway.invoke.cache import ResponseCache
from trivium.gateway.invoke.limiter import InFlightLimiter
from trivium.gateway.invoke.openai_routes import ChatCompletionsController, list_models
from trivium.gateway.invoke.pipeline import Call, Invoker
from trivium.gateway.invoke.routes import InvokeController
from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse
from trivium.gateway.invoke.serving import Serving
from trivium.gateway.invoke.shadow import ShadowRunner

__all__ = (
    "Call",
    "ChatCompletionsController",
    "InFlightLimiter",
    "InvokeController",
    "InvokeRequest",
    "InvokeResponse",
    "Invoker",
    "ResponseCache",
    "Serving",
    "ShadowRunner",
    "list_models",
)
