"""Serving a feature's request: the roads, fallback, shadows, cache, and the HTTP routes."""

from trivium.gateway.invoke.accounting import Accountant
from trivium.gateway.invoke.admission import Admission
from trivium.gateway.invoke.cache import ResponseCache
from trivium.gateway.invoke.call import Call
from trivium.gateway.invoke.openai_routes import ChatCompletionsController, list_models
from trivium.gateway.invoke.pipeline import Invoker
from trivium.gateway.invoke.plan import Planner
from trivium.gateway.invoke.routes import InvokeController
from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse
from trivium.gateway.invoke.serving import Serving
from trivium.gateway.invoke.shadow import ShadowRunner

__all__ = (
    "Accountant",
    "Admission",
    "Call",
    "ChatCompletionsController",
    "InvokeController",
    "InvokeRequest",
    "InvokeResponse",
    "Invoker",
    "Planner",
    "ResponseCache",
    "Serving",
    "ShadowRunner",
    "list_models",
)
