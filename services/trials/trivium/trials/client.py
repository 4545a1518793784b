"""The gateway as a trial sees it: its policy, dataset, adapter, trial, stats and invoke routes
over aiohttp, with the caller's bearer key.

Every route but invoke raises `GatewayError` on a non-2xx answer (the problem's detail, code
and field); invoke hands back the raw status and body, since an error there is a case's result.
A gateway that cannot be reached raises `GatewayUnreachableError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from trivium.common.contracts.datasets import DatasetRowsPage
from trivium.common.contracts.decision import Decision
from trivium.common.contracts.trials import (
    CaseResult,
    TrialCasesPage,
    TrialCreate,
    TrialRecord,
    TrialStatus,
    TrialSummary,
)
from trivium.common.errors import TriviumError, UnavailableError
from trivium.trials.online import FeatureStats

__all__ = ("GatewayClient", "GatewayError", "GatewayUnreachableError")

T = TypeVar("T")
PAGE_LIMIT = 500
"""Rows or cases asked for per page (the routes allow up to 1,000 and 500)."""


class GatewayError(TriviumError):
    """The gateway refused a trial's request: its status, problem code and field."""

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(message, field=field)
        self.status = status
        self.problem_code = code


class GatewayUnreachableError(UnavailableError):
    """No answer from the gateway (connection refused, reset, timed out)."""


class _Problem(msgspec.Struct):
    code: str = "unknown"
    detail: str = ""
    field: str | None = None


class _TrialList(msgspec.Struct):
    trials: list[TrialRecord]


class _Stored(msgspec.Struct):
    stored: int
    done: dict[str, int]


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 120.0,
        max_connections: int = 64,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=max_connections),
            raise_for_status=False,
        )

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    # -- policy and datasets ------------------------------------------------------------

    async def policy(self) -> dict[str, Any]:
        """`GET /v1/policy`: the active policy as JSON (features, upstreams, hash)."""
        return await self._call("GET", "/v1/policy", dict[str, Any])

    async def dataset_rows(
        self, name: str, selector: str | None, offset: int, limit: int = PAGE_LIMIT
    ) -> DatasetRowsPage:
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if selector is not None:
            params["selector"] = selector
        return await self._call(
            "GET", f"/v1/datasets/{_seg(name)}/rows", DatasetRowsPage, params=params
        )

    async def adapter_version(self, name: str, selector: str) -> dict[str, Any]:
        """`GET /v1/adapters/{name}/labels/{label}` or `.../versions/{n}` (scope `read`): the
        version `name@selector` names, with its metadata."""
        where = "versions" if selector.isdigit() else "labels"
        return await self._call(
            "GET", f"/v1/adapters/{_seg(name)}/{where}/{_seg(selector)}", dict[str, Any]
        )

    async def feature_stats(self, feature: str) -> FeatureStats:
        """`GET /v1/stats?feature=`: production's window for `feature` (scope `read`)."""
        return await self._call("GET", "/v1/stats", FeatureStats, params={"feature": feature})

    # -- trials -------------------------------------------------------------------------

    async def create_trial(self, create: TrialCreate) -> TrialRecord:
        return await self._call("POST", "/v1/trials", TrialRecord, json=create)

    async def trial(self, trial_id: str) -> TrialRecord:
        return await self._call("GET", f"/v1/trials/{_seg(trial_id)}", TrialRecord)

    async def trials(self, feature: str | None = None, limit: int = 50) -> list[TrialRecord]:
        params: dict[str, str | int] = {"limit": limit}
        if feature is not None:
            params["feature"] = feature
        return (await self._call("GET", "/v1/trials", _TrialList, params=params)).trials

    async def set_status(self, trial_id: str, status: TrialStatus) -> TrialRecord:
        return await self._call(
            "PATCH", f"/v1/trials/{_seg(trial_id)}", TrialRecord, json={"status": status}
        )

    async def put_cases(self, trial_id: str, cases: Sequence[CaseResult]) -> dict[str, int]:
        """Store results (idempotent per arm and case); the stored count per arm after it."""
        stored = await self._call(
            "PUT", f"/v1/trials/{_seg(trial_id)}/cases", _Stored, json={"cases": list(cases)}
        )
        return stored.done

    async def cases_page(
        self, trial_id: str, arm: str, offset: int, limit: int = PAGE_LIMIT
    ) -> TrialCasesPage:
        return await self._call(
            "GET",
            f"/v1/trials/{_seg(trial_id)}/cases",
            TrialCasesPage,
            params={"arm": arm, "offset": offset, "limit": limit},
        )

    async def cases(self, trial_id: str, arm: str) -> list[CaseResult]:
        """Every stored result of `arm`, page by page, in case-id order."""
        results: list[CaseResult] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.cases_page(trial_id, arm, offset)
            results.extend(page.cases)
            offset = page.next_offset
        return results

    async def put_summary(self, trial_id: str, summary: TrialSummary) -> TrialRecord:
        return await self._call(
            "PUT", f"/v1/trials/{_seg(trial_id)}/summary", TrialRecord, json=summary
        )

    async def decision(self, feature: str, trial_id: str) -> Decision:
        """`GET /v1/features/{feature}/decision?trial=ID`: the trial against the requirements."""
        path = f"/v1/features/{_seg(feature)}/decision"
        return await self._call("GET", path, Decision, params={"trial": trial_id})

    # -- invoke -------------------------------------------------------------------------

    async def invoke(self, feature: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """`POST /v1/features/{feature}/invoke`: the status and raw body, whatever they are."""
        url = f"{self.base_url}/v1/features/{_seg(feature)}/invoke"
        try:
            async with self._session.post(url, data=_encode(body), headers=_JSON) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(url, exc) from exc

    async def _call(
        self,
        method: str,
        path: str,
        answer: type[T],
        *,
        params: dict[str, str | int] | None = None,
        json: object = None,
    ) -> T:
        url = f"{self.base_url}{path}"
        data = None if json is None else _encode(json)
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=_JSON if data else None
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(url, exc) from exc
        if not 200 <= status < 300:
            raise _gateway_error(method, path, status, payload)
        try:
            return msgspec.json.decode(payload, type=answer)
        except msgspec.DecodeError as exc:
            raise GatewayError(
                status, "bad_response", f"{method} {path}: unexpected answer: {exc}", None
            ) from exc


_JSON = {"Content-Type": "application/json"}
_encode = msgspec.json.Encoder().encode


def _seg(value: str) -> str:
    return quote(value, safe="")


def _unreachable(url: str, exc: BaseException) -> GatewayUnreachableError:
    reason = str(exc) or type(exc).__name__
    return GatewayUnreachableError(f"no answer from the gateway at {url}: {reason}")


def _gateway_error(method: str, path: str, status: int, payload: bytes) -> GatewayError:
    try:
        problem = msgspec.json.decode(payload, type=_Problem)
    except msgspec.DecodeError:
        problem = _Problem(code=f"http_{status}", detail=payload[:300].decode(errors="replace"))
    detail = problem.detail or problem.code
    return GatewayError(status, problem.code, f"{method} {path}: {status} {detail}", problem.field)
