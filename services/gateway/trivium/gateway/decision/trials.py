"""Reads a stored trial for the decision: the record and its summary, nothing else.

Reads the trials store's Redis layout (`p:trial:<id>` hash: `record`, `status`,
`updated_at`, `summary`; the per-arm `...:arm:<arm>:ids` sorted sets for the counts), which
the gateway's trial routes (`trivium.gateway.trials.store`, built beside this on its own
branch) write. Once both are in one tree, `TrialStore.get` satisfies `TrialReader` and this
module can go.
"""

from __future__ import annotations

from typing import Protocol, cast

import msgspec
from redis.asyncio import Redis

from trivium.common.contracts.trials import TrialRecord, TrialSummary
from trivium.common.errors import NotFoundError

__all__ = ("RedisTrialReader", "TrialReader", "UnknownTrialError")


class UnknownTrialError(NotFoundError):
    code = "unknown_trial"


class TrialReader(Protocol):
    async def get(self, trial_id: str) -> TrialRecord:
        """The record with its summary; raises `UnknownTrialError`."""
        ...


class _Stored(msgspec.Struct, frozen=True):
    id: str
    feature: str
    dataset: str
    arms: list[str]
    cases: int
    created_at: float
    created_by: str
    policy_hash: str | None = None
    note: str | None = None


class RedisTrialReader:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._stored = msgspec.json.Decoder(_Stored)
        self._summary = msgspec.json.Decoder(TrialSummary)

    async def get(self, trial_id: str) -> TrialRecord:
        key = f"{self.prefix}:trial:{trial_id}"
        fields = cast(dict[bytes, bytes], await self.client.hgetall(key))
        if b"record" not in fields:
            raise UnknownTrialError(f"no trial {trial_id!r}", field="trial")
        stored = self._stored.decode(fields[b"record"])
        async with self.client.pipeline(transaction=False) as pipe:
            for arm in stored.arms:
                pipe.zcard(f"{key}:arm:{arm}:ids")
            counts = await pipe.execute()
        summary = fields.get(b"summary")
        return TrialRecord(
            id=stored.id,
            feature=stored.feature,
            dataset=stored.dataset,
            arms=stored.arms,
            cases=stored.cases,
            status=fields[b"status"].decode(),  # type: ignore[arg-type]
            created_at=stored.created_at,
            created_by=stored.created_by,
            done={arm: int(n) for arm, n in zip(stored.arms, counts, strict=True)},
            updated_at=float(fields[b"updated_at"]),
            policy_hash=stored.policy_hash,
            note=stored.note,
            summary=self._summary.decode(summary) if summary else None,
        )
