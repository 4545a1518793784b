"""Trials in Redis: each trial's record, and its case results kept per arm so that large
trials stream page by page and no Redis value ever holds a whole trial.

Key layout (`p` = the deployment's key prefix):

    p:trial:<id>                     hash: record (the immutable part, JSON), status,
                                     updated_at, summary (JSON, once finished)
    p:trial:<id>:arm:<arm>:results   hash: case id -> CaseResult (JSON)
    p:trial:<id>:arm:<arm>:ids       sorted set: every case id at score 0, so ranks are the
                                     case ids' byte order (pages in case-id order)
    p:trials                         sorted set: trial id by created_at (newest last)
    p:trials:feature:<feature>       the same, per feature

The gateway stores and serves what the runner computed; it interprets nothing but the arm
names. A re-sent case (same arm and case id) replaces its result.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from trivium.common.contracts.datasets import CASE_ID_PATTERN
from trivium.common.contracts.trials import (
    CaseResult,
    TrialCasesPage,
    TrialCreate,
    TrialRecord,
    TrialStatus,
    TrialSummary,
)
from trivium.common.errors import InvalidInputError, NotFoundError

__all__ = ("MAX_CASES_PER_PUT", "TrialNotFoundError", "TrialStore", "new_trial_id")

MAX_CASES_PER_PUT = 500
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_CASE_ID = re.compile(CASE_ID_PATTERN)


class TrialNotFoundError(NotFoundError):
    code = "unknown_trial"


class _Stored(msgspec.Struct, frozen=True):
    """The immutable part of a trial's record."""

    id: str
    feature: str
    dataset: str
    arms: list[str]
    cases: int
    created_at: float
    created_by: str
    policy_hash: str | None = None
    note: str | None = None


def new_trial_id() -> str:
    return "trl_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class TrialStore:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._decode_stored = msgspec.json.Decoder(_Stored)
        self._decode_case = msgspec.json.Decoder(CaseResult)
        self._decode_summary = msgspec.json.Decoder(TrialSummary)

    # -- keys --------------------------------------------------------------------------------

    def _trial(self, trial_id: str) -> str:
        return f"{self.prefix}:trial:{trial_id}"

    def _results(self, trial_id: str, arm: str) -> str:
        return f"{self.prefix}:trial:{trial_id}:arm:{arm}:results"

    def _ids(self, trial_id: str, arm: str) -> str:
        return f"{self.prefix}:trial:{trial_id}:arm:{arm}:ids"

    def _index(self, feature: str | None = None) -> str:
        base = f"{self.prefix}:trials"
        return base if feature is None else f"{base}:feature:{feature}"

    # -- writes ------------------------------------------------------------------------------

    async def create(self, spec: TrialCreate, actor: str) -> TrialRecord:
        if len(set(spec.arms)) != len(spec.arms):
            raise InvalidInputError("each arm is named once", field="arms")
        now = time.time()
        stored = _Stored(
            id=new_trial_id(),
            feature=spec.feature,
            dataset=spec.dataset,
            arms=list(spec.arms),
            cases=spec.cases,
            created_at=now,
            created_by=actor,
            policy_hash=spec.policy_hash,
            note=spec.note,
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._trial(stored.id),
                mapping={
                    "record": msgspec.json.encode(stored),
                    "status": "running",
                    "updated_at": repr(now),
                },
            )
            pipe.zadd(self._index(), {stored.id: now})
            pipe.zadd(self._index(spec.feature), {stored.id: now})
            await pipe.execute()
        return _record(stored, "running", now, {arm: 0 for arm in stored.arms})

    async def put_cases(
        self, trial_id: str, cases: Sequence[CaseResult]
    ) -> tuple[int, dict[str, int]]:
        """Store (or replace) each case's result; the stored count per arm after it."""
        stored = await self._stored(trial_id)
        arms = set(stored.arms)
        for i, case in enumerate(cases):
            if case.arm not in arms:
                raise InvalidInputError(
                    f"arm {case.arm!r} is not one of this trial's ({', '.join(stored.arms)})",
                    field=f"cases[{i}].arm",
                )
            if not _CASE_ID.match(case.case_id):
                raise InvalidInputError(
                    f"a case id matches {CASE_ID_PATTERN}", field=f"cases[{i}].case_id"
                )
        async with self.client.pipeline(transaction=True) as pipe:
            for case in cases:
                encoded = msgspec.json.encode(case)
                pipe.hset(self._results(trial_id, case.arm), case.case_id, encoded)
                pipe.zadd(self._ids(trial_id, case.arm), {case.case_id: 0})
            pipe.hset(self._trial(trial_id), "updated_at", repr(time.time()))
            for arm in stored.arms:
                pipe.zcard(self._ids(trial_id, arm))
            answers = await pipe.execute()
        counts = answers[-len(stored.arms) :]
        return len(cases), {arm: int(n) for arm, n in zip(stored.arms, counts, strict=True)}

    async def set_status(self, trial_id: str, status: TrialStatus) -> TrialRecord:
        await self._stored(trial_id)
        await self.client.hset(
            self._trial(trial_id), mapping={"status": status, "updated_at": repr(time.time())}
        )
        return await self.get(trial_id)

    async def put_summary(self, trial_id: str, summary: TrialSummary) -> TrialRecord:
        await self._stored(trial_id)
        await self.client.hset(
            self._trial(trial_id),
            mapping={
                "summary": msgspec.json.encode(summary),
                "status": "finished",
                "updated_at": repr(time.time()),
            },
        )
        return await self.get(trial_id)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, trial_id: str) -> TrialRecord:
        """The record with its summary (when finished) and the stored count per arm."""
        fields = cast(dict[bytes, bytes], await self.client.hgetall(self._trial(trial_id)))
        if not fields:
            raise _not_found(trial_id)
        stored = self._decode_stored.decode(fields[b"record"])
        done = await self._done(trial_id, stored.arms)
        summary = fields.get(b"summary")
        return _record(
            stored,
            fields[b"status"].decode(),
            float(fields[b"updated_at"]),
            done,
            self._decode_summary.decode(summary) if summary else None,
        )

    async def list(self, feature: str | None, limit: int) -> list[TrialRecord]:
        """Newest first, without summaries."""
        ids = cast(list[bytes], await self.client.zrevrange(self._index(feature), 0, limit - 1))
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for raw in ids:
                pipe.hmget(self._trial(raw.decode()), ["record", "status", "updated_at"])
            rows: list[list[Any]] = await pipe.execute()
        found = [
            (self._decode_stored.decode(record), status.decode(), float(updated))
            for record, status, updated in rows
            if record is not None
        ]
        async with self.client.pipeline(transaction=False) as pipe:
            for stored, _, _ in found:
                for arm in stored.arms:
                    pipe.zcard(self._ids(stored.id, arm))
            counts = iter(await pipe.execute())
        return [
            _record(stored, status, updated, {arm: int(next(counts)) for arm in stored.arms})
            for stored, status, updated in found
        ]

    async def page(self, trial_id: str, arm: str | None, offset: int, limit: int) -> TrialCasesPage:
        """Results of `arm` (None: the trial's first) from `offset` in case-id order."""
        stored = await self._stored(trial_id)
        arm = stored.arms[0] if arm is None else arm
        if arm not in stored.arms:
            raise InvalidInputError(
                f"arm {arm!r} is not one of this trial's ({', '.join(stored.arms)})", field="arm"
            )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zcard(self._ids(trial_id, arm))
            pipe.zrange(self._ids(trial_id, arm), offset, offset + limit - 1)
            total, ids = await pipe.execute()
        values = await self.client.hmget(self._results(trial_id, arm), ids) if ids else []
        cases = [self._decode_case.decode(v) for v in values if v is not None]
        end = offset + len(ids)
        return TrialCasesPage(
            trial=trial_id,
            arm=arm,
            total=int(total),
            offset=offset,
            cases=cases,
            next_offset=end if end < total else None,
        )

    async def _stored(self, trial_id: str) -> _Stored:
        raw = await self.client.hget(self._trial(trial_id), "record")
        if raw is None:
            raise _not_found(trial_id)
        return self._decode_stored.decode(raw)

    async def _done(self, trial_id: str, arms: Sequence[str]) -> dict[str, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            for arm in arms:
                pipe.zcard(self._ids(trial_id, arm))
            counts = await pipe.execute()
        return {arm: int(n) for arm, n in zip(arms, counts, strict=True)}


def _not_found(trial_id: str) -> TrialNotFoundError:
    return TrialNotFoundError(f"no trial {trial_id!r}", field="id")


def _record(
    stored: _Stored,
    status: str,
    updated_at: float,
    done: dict[str, int],
    summary: TrialSummary | None = None,
) -> TrialRecord:
    return TrialRecord(
        id=stored.id,
        feature=stored.feature,
        dataset=stored.dataset,
        arms=stored.arms,
        cases=stored.cases,
        status=msgspec.convert(status, TrialStatus),
        created_at=stored.created_at,
        created_by=stored.created_by,
        done=done,
        updated_at=updated_at,
        policy_hash=stored.policy_hash,
        note=stored.note,
        summary=summary,
    )
