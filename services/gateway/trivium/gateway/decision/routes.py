"""HTTP: `GET /v1/features/{feature}/decision?trial=ID` (scope `read`)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from redis import exceptions as redis_errors

from trivium.common.contracts.decision import Decision
from trivium.common.contracts.trials import TRIAL_ID_PATTERN
from trivium.common.errors import NotFoundError, UnavailableError
from trivium.gateway.callers.auth import require_scope
from trivium.gateway.decision.report import build_decision
from trivium.gateway.policy.document import NAME_PATTERN as FEATURE_PATTERN
from trivium.gateway.policy.holder import LoadedPolicy
from trivium.gateway.route_docs import native_errors, scoped
from trivium.gateway.trials import TrialNotFoundError, TrialStore

__all__ = ("DecisionController", "UnknownDecisionFeatureError")

log = logging.getLogger(__name__)


class UnknownDecisionFeatureError(NotFoundError):
    code = "unknown_feature"


class DecisionController(Controller):
    path = "/v1/features"
    tags = ["decision"]
    guards = [require_scope]

    @get(
        "/{feature:str}/decision",
        opt={"scope": "read"},
        security=scoped("read"),
        responses={
            HTTP_200_OK: ResponseSpec(Decision, description="the decision"),
            **native_errors(400, 404, 409),
        },
        summary="A finished trial's roads against the feature's requirements: a decision",
        description="Each arm checked against each requirement of the feature's "
        "`requirements:` block by its 95% interval (meets, misses, undecided), the "
        "framework's rules that apply (cited), the ROI at the declared monthly volume, a "
        "recommendation with its reasons and the staged path prompt -> rag -> finetune -> "
        "hybrid. 404 `unknown_feature` (field `feature`), `unknown_trial` (field `trial`); 409 "
        "`trial_not_decidable` (field `trial`): the trial is of another feature or has no "
        "summary yet. 503 while Redis does not answer.",
    )
    async def decision(
        self,
        request: Request[Any, Any, Any],
        policy: LoadedPolicy,
        feature: Annotated[str, Parameter(pattern=FEATURE_PATTERN, description="feature name")],
        trial: Annotated[str, Parameter(pattern=TRIAL_ID_PATTERN, description="the trial's id")],
    ) -> Decision:
        entry = policy.policy.features.get(feature)
        if entry is None:
            raise UnknownDecisionFeatureError(
                f"no feature {feature!r} in the active policy", field="feature"
            )
        store: TrialStore = request.app.state.trial_store
        try:
            record = await store.get(trial)
        except TrialNotFoundError as exc:
            raise TrialNotFoundError(str(exc), field="trial") from exc
        except (redis_errors.RedisError, OSError) as exc:
            raise UnavailableError(
                "trials are kept in Redis, which does not answer; retry shortly",
                retry_after_s=1,
                extra={"dependency": "redis"},
            ) from exc
        decision = build_decision(feature, entry, record, policy.hash)
        log.info(
            "decision",
            extra={
                "feature": feature,
                "trial": trial,
                "recommended": decision.recommendation.arm or decision.recommendation.road,
                "confident": decision.recommendation.confident,
            },
        )
        return decision
