"""What the invoke routes need (the invoker, the policy, who calls), in one object in app
state.

Read from `request.app.state` rather than through dependency injection: with several
dependencies Litestar resolves them in an anyio task group, three tasks per request, which
cost about a tenth of the gateway's CPU per request in the overhead benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request

from trivium.gateway.callers import Authenticator
from trivium.gateway.invoke.pipeline import Invoker
from trivium.gateway.policy import PolicyHolder

__all__ = ("Serving", "serving")


@dataclass(frozen=True, slots=True)
class Serving:
    invoker: Invoker
    policies: PolicyHolder
    authenticator: Authenticator


def serving(request: Request[Any, Any, Any]) -> Serving:
    found: Serving = request.app.state.serving
    return found
