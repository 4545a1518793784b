"""HTTP: `GET /v1/features/{feature}/drift` (scope `read`) and
`POST /v1/features/{feature}/drift/baseline` (scope `policy:reload`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from trivium.common.contracts.drift import BaselineReset, FeatureDrift
from trivium.common.errors import NotFoundError
from trivium.gateway.callers.auth import require_scope
from trivium.gateway.drift.service import DriftService
from trivium.gateway.policy import Feature
from trivium.gateway.policy.document import NAME_PATTERN as FEATURE_PATTERN
from trivium.gateway.policy.holder import LoadedPolicy
from trivium.gateway.route_docs import native_errors, scoped

__all__ = ("DriftController",)

FeatureName = Annotated[str, Parameter(pattern=FEATURE_PATTERN, description="feature name")]


class UnknownDriftFeatureError(NotFoundError):
    code = "unknown_feature"


def _feature(policy: LoadedPolicy, name: str) -> Feature:
    feature = policy.policy.features.get(name)
    if feature is None:
        raise UnknownDriftFeatureError(f"no feature {name!r} in the active policy", field="feature")
    return feature


class DriftController(Controller):
    path = "/v1/features"
    tags = ["drift"]
    guards = [require_scope]

    @get(
        "/{feature:str}/drift",
        opt={"scope": "read"},
        security=scoped("read"),
        responses={
            HTTP_200_OK: ResponseSpec(FeatureDrift, description="the feature's drift"),
            **native_errors(400, 404),
        },
        summary="The feature's drift signals against its baseline, and the drifting queries",
        description="Answer, cost and latency signals of this replica's window against the "
        "feature's frozen baseline, then the retriever's query and retrieval signals for the "
        "feature's collection and search mode, each with its threshold; `clusters`: the "
        "window's queries farthest from the baseline's, grouped, as example queries. A "
        "signal's `value` is null until both baseline and window are full enough. When the "
        "retriever does not answer, `retrieval_error` says why. 404 `unknown_feature`.",
    )
    async def drift(
        self, request: Request[Any, Any, Any], policy: LoadedPolicy, feature: FeatureName
    ) -> FeatureDrift:
        service: DriftService = request.app.state.drift
        return await service.report(feature, _feature(policy, feature))

    @post(
        "/{feature:str}/drift/baseline",
        opt={"scope": "policy:reload"},
        security=scoped("policy:reload"),
        status_code=HTTP_200_OK,
        responses={
            HTTP_200_OK: ResponseSpec(BaselineReset, description="what collects anew"),
            **native_errors(400, 404),
        },
        summary="Collect a new drift baseline for the feature",
        description="The feature's answers (on this replica) and every search mode of its "
        "collection in the retriever drop their baseline and freeze the next "
        "`baseline_size` requests as the new one. 404 `unknown_feature`.",
    )
    async def reset(
        self, request: Request[Any, Any, Any], policy: LoadedPolicy, feature: FeatureName
    ) -> BaselineReset:
        service: DriftService = request.app.state.drift
        return await service.reset(feature, _feature(policy, feature), why="api")
