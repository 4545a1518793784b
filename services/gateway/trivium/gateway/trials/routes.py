"""HTTP: `/v1/trials`, where the trial runner stores case results and summaries (scope
`trials`) and anyone with `read` looks at them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED

from trivium.common.contracts.trials import (
    ARM_PATTERN,
    FEATURE_PATTERN,
    TRIAL_ID_PATTERN,
    CaseResult,
    TrialCasesPage,
    TrialCreate,
    TrialRecord,
    TrialSummary,
)
from trivium.common.http.strict_body import decode_body_strictly
from trivium.gateway.callers.auth import ACTOR, require_scope
from trivium.gateway.route_docs import native_errors, scoped
from trivium.gateway.trials.store import MAX_CASES_PER_PUT, TrialStore

__all__ = (
    "MAX_CASES_BODY_BYTES",
    "CasesPut",
    "CasesStored",
    "StatusChange",
    "TrialController",
    "TrialList",
)

MAX_CASES_BODY_BYTES = 8 * 1024 * 1024
"""A batch of up to 500 case results, answers included; larger: 413."""
MAX_PAGE = 1000

TrialId = Annotated[str, Parameter(pattern=TRIAL_ID_PATTERN, description="the trial's id")]
_READ, _WRITE = {"scope": "read"}, {"scope": "trials"}


class CasesPut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cases: Annotated[list[CaseResult], msgspec.Meta(min_length=1, max_length=MAX_CASES_PER_PUT)]


class CasesStored(msgspec.Struct, frozen=True):
    stored: int
    done: dict[str, int]
    """Per arm: cases with a stored result, after this batch."""


class StatusChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Literal["running", "interrupted"]


class TrialList(msgspec.Struct, frozen=True):
    trials: list[TrialRecord]
    """Newest first, without summaries."""


def _store(request: Request[Any, Any, Any]) -> TrialStore:
    store: TrialStore = request.app.state.trial_store
    return store


class TrialController(Controller):
    path = "/v1/trials"
    tags = ["trials"]
    guards = [require_scope]
    dependencies = {"actor": ACTOR}
    before_request = staticmethod(decode_body_strictly)

    @post(
        "/",
        opt=_WRITE,
        security=scoped("trials"),
        responses=native_errors(400, 413),
        summary="Start a trial: its feature, dataset version and arms",
    )
    async def create(
        self, request: Request[Any, Any, Any], actor: str, data: TrialCreate
    ) -> Response[TrialRecord]:
        record = await _store(request).create(data, actor)
        return Response(record, status_code=HTTP_201_CREATED)

    @get(
        "/",
        opt=_READ,
        security=scoped("read"),
        responses=native_errors(400),
        summary="Trials, newest first (without summaries)",
    )
    async def list_trials(
        self,
        request: Request[Any, Any, Any],
        feature: Annotated[str | None, Parameter(pattern=FEATURE_PATTERN)] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
    ) -> TrialList:
        return TrialList(await _store(request).list(feature, limit))

    @get(
        "/{id:str}",
        opt=_READ,
        security=scoped("read"),
        responses=native_errors(400, 404),
        summary="A trial: its cases done per arm, and its summary once finished",
    )
    async def show(self, request: Request[Any, Any, Any], id: TrialId) -> TrialRecord:
        return await _store(request).get(id)

    @patch(
        "/{id:str}",
        opt=_WRITE,
        security=scoped("trials"),
        responses=native_errors(400, 404, 413),
        summary="Mark a trial running (resumed) or interrupted",
    )
    async def set_status(
        self,
        request: Request[Any, Any, Any],
        id: TrialId,
        data: StatusChange,
    ) -> TrialRecord:
        return await _store(request).set_status(id, data.status)

    @put(
        "/{id:str}/cases",
        opt=_WRITE,
        security=scoped("trials"),
        responses=native_errors(400, 404, 413),
        request_max_body_size=MAX_CASES_BODY_BYTES,
        summary="Store case results; a re-sent case (arm, case id) replaces its result",
    )
    async def put_cases(
        self,
        request: Request[Any, Any, Any],
        id: TrialId,
        data: CasesPut,
    ) -> CasesStored:
        stored, done = await _store(request).put_cases(id, data.cases)
        return CasesStored(stored, done)

    @get(
        "/{id:str}/cases",
        opt=_READ,
        security=scoped("read"),
        responses=native_errors(400, 404),
        summary="One arm's case results from `offset`, in case-id order",
    )
    async def cases(
        self,
        request: Request[Any, Any, Any],
        id: TrialId,
        arm: Annotated[
            str | None, Parameter(pattern=ARM_PATTERN, description="default: the first arm")
        ] = None,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 500,
    ) -> TrialCasesPage:
        return await _store(request).page(id, arm, offset, limit)

    @put(
        "/{id:str}/summary",
        opt=_WRITE,
        security=scoped("trials"),
        responses=native_errors(400, 404, 413),
        summary="Store the trial's summary; the trial is finished",
    )
    async def put_summary(
        self,
        request: Request[Any, Any, Any],
        id: TrialId,
        data: TrialSummary,
    ) -> TrialRecord:
        return await _store(request).put_summary(id, data)
