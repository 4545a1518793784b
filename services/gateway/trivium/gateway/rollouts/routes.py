"""HTTP: the rollouts the active policy declares, their state, and the operator's hands:
pause, resume, abort (scope `policy:reload`, like reloading the policy)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from trivium.gateway.callers.auth import ACTOR, require_scope
from trivium.gateway.policy.document import NAME_PATTERN
from trivium.gateway.rollouts.controller import Action, RolloutController
from trivium.gateway.rollouts.schemas import RolloutList, RolloutView
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("RolloutRoutes",)

FeatureName = Annotated[str, Parameter(pattern=NAME_PATTERN, description="the feature")]
VariantName = Annotated[
    str, Parameter(pattern=NAME_PATTERN, description="the variant carrying the rollout block")
]
_ONE = "/{feature:str}/{variant:str}"


def _controller(request: Request[Any, Any, Any]) -> RolloutController:
    found: RolloutController = request.app.state.rollouts
    return found


def _operator_action(action: Action, summary: str) -> HTTPRouteHandler:
    """`POST /v1/rollouts/{feature}/{variant}/<action>`: one of the operator's hands."""

    async def act(
        self: Controller,
        request: Request[Any, Any, Any],
        actor: str,
        feature: FeatureName,
        variant: VariantName,
    ) -> RolloutView:
        return await _controller(request).act(feature, variant, action, actor)

    act.__name__ = act.__qualname__ = action
    return post(
        f"{_ONE}/{action}",
        opt={"scope": "policy:reload"},
        security=scoped("policy:reload"),
        responses=native_errors(400, 404, 409),
        dependencies={"actor": ACTOR},
        status_code=HTTP_200_OK,
        summary=summary,
    )(act)


class RolloutRoutes(Controller):
    path = "/v1/rollouts"
    tags = ["rollouts"]
    guards = [require_scope]

    @get(
        "/",
        opt={"scope": "read"},
        security=scoped("read"),
        responses=native_errors(),
        summary="Every rollout of the active policy: status, step, effective weights, "
        "history, and the replica driving them (the lease)",
    )
    async def list_rollouts(self, request: Request[Any, Any, Any]) -> RolloutList:
        return await _controller(request).list()

    @get(
        _ONE,
        opt={"scope": "read"},
        security=scoped("read"),
        responses=native_errors(400, 404),
        summary="One rollout, with its history (reasons and guard numbers)",
    )
    async def show(
        self, request: Request[Any, Any, Any], feature: FeatureName, variant: VariantName
    ) -> RolloutView:
        return await _controller(request).show(feature, variant)

    pause = _operator_action(
        "pause", "Hold the rollout at its step (its guards still roll it back)"
    )
    resume = _operator_action("resume", "Let a paused rollout advance again")
    abort = _operator_action(
        "abort", "End the rollout now: the variant's weight goes to 0 until its block is edited"
    )
