"""A stand-in for the gateway's dataset, trial, policy and invoke routes, for the trial runner's
tests while those routes are built on other branches (replace it with the real gateway once
they are merged).

A real aiohttp server on 127.0.0.1 in a background thread (like `openai_upstream.py`), speaking
the routes of docs/notes interfaces (Step 9) with in-memory state:

* `GET /v1/policy` -> `policy` as given;
* `GET /v1/datasets/{name}/rows?selector=&offset=&limit=` -> `DatasetRowsPage`;
* `POST /v1/trials`, `GET /v1/trials`, `GET/PATCH /v1/trials/{id}`, `PUT /v1/trials/{id}/cases`
  (at most 500; idempotent per arm and case; an unknown arm -> 400 `cases[i].arm`),
  `GET /v1/trials/{id}/cases?arm=&offset=&limit=`, `PUT /v1/trials/{id}/summary`;
* `POST /v1/features/{feature}/invoke` -> `answer(feature, body)` (a status and a JSON body),
  after `delay_s`; a `trial` field needs a key with scope `trials` (403 `forbidden_scope`).

Every route needs `Authorization: Bearer <key>` of a key in `keys` (401 otherwise). Errors are
problem+json with `code` and `field`. `invokes` counts invoke calls per (trial id, arm, case id).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from trivium.common.contracts.datasets import DatasetRow, DatasetRowsPage
from trivium.common.contracts.trials import (
    CaseResult,
    TrialCasesPage,
    TrialCreate,
    TrialRecord,
    TrialSummary,
)

__all__ = ("Answer", "TrialsGateway")

Answer = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]
_encode = msgspec.json.Encoder().encode
_SCOPES = web.RequestKey("scopes", tuple[str, ...])


class _RefusedError(Exception):
    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.field = status, code, detail, field


class TrialsGateway:
    def __init__(
        self,
        *,
        policy: dict[str, Any],
        answer: Answer,
        keys: dict[str, tuple[str, ...]],
        delay_s: float = 0.0,
    ) -> None:
        self.policy = policy
        self.answer = answer
        self.keys = keys
        self.delay_s = delay_s
        self.datasets: dict[str, list[list[DatasetRow]]] = {}
        """name -> versions (1-based in the API) -> rows."""
        self.labels: dict[str, dict[str, int]] = {}
        self.trials: dict[str, TrialRecord] = {}
        self.cases: dict[str, dict[str, dict[str, CaseResult]]] = {}
        """trial -> arm -> case id -> result."""
        self.invokes: Counter[tuple[str, str, str]] = Counter()
        self.case_puts: list[int] = []
        """The size of each `PUT .../cases` batch."""
        self.page_cap = 500
        """The most rows or cases one page holds (small: the runner must follow pages)."""
        self.refuse_case_puts = False
        """Answer `PUT .../cases` with 503 (a gateway that cannot store)."""
        self.on_invoke: Callable[[int], object] | None = None
        """Called (in the server's thread) with the running count of invoke calls."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, name: str, rows: list[DatasetRow], label: str | None = None) -> int:
        versions = self.datasets.setdefault(name, [])
        versions.append(rows)
        if label is not None:
            self.labels.setdefault(name, {})[label] = len(versions)
        return len(versions)

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> TrialsGateway:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._thread is not None
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._problems])
        app.router.add_get("/v1/policy", self._policy)
        app.router.add_get("/v1/datasets/{name}/rows", self._rows)
        app.router.add_post("/v1/trials", self._create)
        app.router.add_get("/v1/trials", self._list)
        app.router.add_get("/v1/trials/{id}", self._show)
        app.router.add_patch("/v1/trials/{id}", self._patch)
        app.router.add_put("/v1/trials/{id}/cases", self._put_cases)
        app.router.add_get("/v1/trials/{id}/cases", self._get_cases)
        app.router.add_put("/v1/trials/{id}/summary", self._put_summary)
        app.router.add_post("/v1/features/{feature}/invoke", self._invoke)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _problems(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            request[_SCOPES] = self._scopes(request)
            response: web.StreamResponse = await handler(request)
            return response
        except _RefusedError as refusal:
            body = {
                "type": f"urn:trivium:error:{refusal.code}",
                "title": refusal.code,
                "status": refusal.status,
                "detail": refusal.detail,
                "code": refusal.code,
            }
            if refusal.field is not None:
                body["field"] = refusal.field
            return web.Response(
                status=refusal.status, body=_encode(body), content_type="application/problem+json"
            )

    def _scopes(self, request: web.Request) -> tuple[str, ...]:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key not in self.keys:
            raise _RefusedError(401, "unauthenticated", "a valid bearer key is required")
        return self.keys[key]

    @staticmethod
    def _need(request: web.Request, scope: str, field: str | None = None) -> None:
        if scope not in request[_SCOPES]:
            raise _RefusedError(403, "forbidden_scope", f"needs scope {scope}", field)

    @staticmethod
    def _json(value: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=_encode(value), content_type="application/json")

    @staticmethod
    async def _decode(request: web.Request, kind: type[Any]) -> Any:
        try:
            return msgspec.json.decode(await request.read(), type=kind)
        except msgspec.ValidationError as exc:
            raise _RefusedError(400, "invalid_input", str(exc), "body") from exc

    def _trial(self, request: web.Request) -> TrialRecord:
        trial = self.trials.get(request.match_info["id"])
        if trial is None:
            raise _RefusedError(404, "not_found", "no such trial", "id")
        return trial

    @staticmethod
    def _int(request: web.Request, name: str, default: int) -> int:
        return int(request.query.get(name, default))

    # -- routes -------------------------------------------------------------------------

    async def _policy(self, request: web.Request) -> web.Response:
        self._need(request, "read")
        return self._json(self.policy)

    async def _rows(self, request: web.Request) -> web.Response:
        self._need(request, "read")
        name = request.match_info["name"]
        versions = self.datasets.get(name)
        if not versions:
            raise _RefusedError(404, "not_found", f"no dataset {name}", "name")
        selector = request.query.get("selector")
        if selector is None:
            version = len(versions)
        elif selector.isdigit():
            version = int(selector)
        else:
            version = self.labels.get(name, {}).get(selector, 0)
        if not 1 <= version <= len(versions):
            raise _RefusedError(404, "not_found", f"no version {selector}", "selector")
        rows = versions[version - 1]
        offset = self._int(request, "offset", 0)
        limit = min(self._int(request, "limit", 500), self.page_cap)
        end = offset + limit
        page = DatasetRowsPage(
            name=name,
            version=version,
            total=len(rows),
            offset=offset,
            rows=rows[offset:end],
            next_offset=end if end < len(rows) else None,
        )
        return self._json(page)

    async def _create(self, request: web.Request) -> web.Response:
        self._need(request, "trials")
        create: TrialCreate = await self._decode(request, TrialCreate)
        now = time.time()
        record = TrialRecord(
            id="trl_" + secrets.token_hex(6),
            feature=create.feature,
            dataset=create.dataset,
            arms=create.arms,
            cases=create.cases,
            status="running",
            created_at=now,
            created_by="test",
            done={arm: 0 for arm in create.arms},
            updated_at=now,
            policy_hash=create.policy_hash,
            note=create.note,
        )
        self.trials[record.id] = record
        self.cases[record.id] = {arm: {} for arm in create.arms}
        return self._json(record, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        self._need(request, "read")
        feature = request.query.get("feature")
        records = [
            msgspec.structs.replace(r, summary=None)
            for r in sorted(self.trials.values(), key=lambda r: -r.created_at)
            if feature is None or r.feature == feature
        ]
        return self._json({"trials": records[: self._int(request, "limit", 50)]})

    async def _show(self, request: web.Request) -> web.Response:
        self._need(request, "read")
        return self._json(self._trial(request))

    async def _patch(self, request: web.Request) -> web.Response:
        self._need(request, "trials")
        trial = self._trial(request)
        status = (await self._decode(request, dict[str, str])).get("status")
        if status not in ("running", "interrupted"):
            raise _RefusedError(400, "invalid_input", "running or interrupted", "status")
        return self._json(self._update(trial, status=status))

    async def _put_cases(self, request: web.Request) -> web.Response:
        self._need(request, "trials")
        trial = self._trial(request)
        if self.refuse_case_puts:
            raise _RefusedError(503, "unavailable", "the store is down")
        cases: list[CaseResult] = (await self._decode(request, dict[str, list[CaseResult]]))[
            "cases"
        ]
        if len(cases) > 500:
            raise _RefusedError(400, "invalid_input", "at most 500 cases", "cases")
        for index, case in enumerate(cases):
            if case.arm not in trial.arms:
                raise _RefusedError(400, "invalid_input", "arm not in trial", f"cases[{index}].arm")
        for case in cases:
            self.cases[trial.id][case.arm][case.case_id] = case
        self.case_puts.append(len(cases))
        record = self._update(trial)
        return self._json({"stored": len(cases), "done": record.done})

    async def _get_cases(self, request: web.Request) -> web.Response:
        self._need(request, "read")
        trial = self._trial(request)
        arm = request.query.get("arm", "")
        if arm not in trial.arms:
            raise _RefusedError(400, "invalid_input", "arm not in trial", "arm")
        stored = [self.cases[trial.id][arm][k] for k in sorted(self.cases[trial.id][arm])]
        offset = self._int(request, "offset", 0)
        limit = min(self._int(request, "limit", 500), self.page_cap)
        end = offset + limit
        page = TrialCasesPage(
            trial=trial.id,
            arm=arm,
            total=len(stored),
            offset=offset,
            cases=stored[offset:end],
            next_offset=end if end < len(stored) else None,
        )
        return self._json(page)

    async def _put_summary(self, request: web.Request) -> web.Response:
        self._need(request, "trials")
        trial = self._trial(request)
        summary: TrialSummary = await self._decode(request, TrialSummary)
        return self._json(self._update(trial, status="finished", summary=summary))

    async def _invoke(self, request: web.Request) -> web.Response:
        self._need(request, "invoke")
        body = await self._decode(request, dict[str, Any])
        trial = body.get("trial")
        if trial is not None:
            self._need(request, "trials", "trial")
            case = body.get("input", {}).get("case") or body["messages"][-1]["content"]
            with self._lock:
                self.invokes[(trial["id"], trial["arm"], case)] += 1
                count = sum(self.invokes.values())
            if self.on_invoke is not None:
                self.on_invoke(count)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, answer = self.answer(request.match_info["feature"], body)
        content_type = "application/json" if status < 400 else "application/problem+json"
        return web.Response(status=status, body=_encode(answer), content_type=content_type)

    def _update(self, trial: TrialRecord, **changes: Any) -> TrialRecord:
        done = {arm: len(self.cases[trial.id][arm]) for arm in trial.arms}
        record = msgspec.structs.replace(trial, done=done, updated_at=time.time(), **changes)
        self.trials[trial.id] = record
        return record
