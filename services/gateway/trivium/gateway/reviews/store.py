"""Reviews in Redis: ONE Lua script per write (the case and its indexes and the audit entry).

    <prefix>:review:<id>                hash: `c` the case (JSON), `f` feature, `s` status,
                                        `o` owner (the caller key's id, '' in open mode),
                                        `d` the decision (JSON); expires at created + retention
    <prefix>:reviews:<feature>:all      sorted set: id -> created ms (at most `max_per_feature`)
    <prefix>:reviews:<feature>:pending  sorted set: id -> created ms, the undecided ones
    <prefix>:reviews:features           set: the features that ever had a review
    <prefix>:reviews:audit              stream: `review`, `feature`, `action` (enqueued or the
                                        decision), `actor` (the key name), `reason`

The bound: when a feature's queue is full, a new case evicts its oldest decided one; when
every case kept is still pending, the new one is refused (counted as dropped; a held answer
answers 503). Entries older than the retention leave the indexes on the next write and the
hashes expire with them. Like feedback, the keys are not in one Redis Cluster slot: this
runs against one Redis (or a primary with replicas).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import msgspec
from redis.asyncio import Redis

from trivium.common.contracts.datasets import DatasetRow, Expected, RowMessage
from trivium.gateway.reviews.schemas import (
    STATUS_OF,
    DecisionKind,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
    ReviewSummary,
)

__all__ = ("DECIDED", "Decided", "QueueDepth", "ReviewStore", "StoredReview")

ENQUEUE = """
local cutoff = ARGV[7]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. cutoff)
local max = tonumber(ARGV[6])
local need = redis.call('ZCARD', KEYS[2]) - max + 1
local offset = 0
while need > 0 do
  local batch = redis.call('ZRANGE', KEYS[2], offset, offset + 99)
  if #batch == 0 then return 0 end
  for _, id in ipairs(batch) do
    if need > 0 and not redis.call('ZSCORE', KEYS[3], id) then
      redis.call('ZREM', KEYS[2], id)
      redis.call('DEL', ARGV[8] .. id)
      need = need - 1
    else
      offset = offset + 1
    end
  end
end
redis.call('HSET', KEYS[1], 'c', ARGV[2], 'f', ARGV[3], 's', 'pending', 'o', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[3])
redis.call('XADD', KEYS[4], 'MINID', '~', cutoff, '*', 'review', ARGV[1], 'feature', ARGV[3],
           'action', 'enqueued', 'actor', ARGV[9], 'reason', ARGV[11])
return 1
"""

DECIDE = """
local status = redis.call('HGET', KEYS[1], 's')
if not status then return {0} end
if status ~= 'pending' then return {2, status, redis.call('HGET', KEYS[1], 'd') or ''} end
local feature = redis.call('HGET', KEYS[1], 'f')
redis.call('HSET', KEYS[1], 's', ARGV[2], 'd', ARGV[3])
redis.call('ZREM', ARGV[5] .. feature .. ':pending', ARGV[1])
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[6], '*', 'review', ARGV[1], 'feature', feature,
           'action', ARGV[7], 'actor', ARGV[4], 'reason', '')
return {1, redis.call('HGET', KEYS[1], 'c')}
"""
DECIDED, MISSING, ALREADY = 1, 0, 2
MAX_LIST = 1000

_CASE = msgspec.json.Decoder(ReviewCase)
_DECISION = msgspec.json.Decoder(ReviewDecision)
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StoredReview:
    case: ReviewCase
    status: ReviewStatus
    owner: str
    decision: ReviewDecision | None


@dataclass(frozen=True, slots=True)
class Decided:
    result: int
    """DECIDED, MISSING (no such review, or expired) or ALREADY (decided before)."""
    case: ReviewCase | None = None
    previous: ReviewDecision | None = None
    previous_status: str | None = None


@dataclass(frozen=True, slots=True)
class QueueDepth:
    pending: int
    oldest_ms: int | None


class ReviewStore:
    def __init__(
        self, client: Redis, prefix: str, *, retention_s: int, max_per_feature: int
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_ms = retention_s * 1000
        self.max_per_feature = max_per_feature
        self.audit = f"{prefix}:reviews:audit"
        self.features = f"{prefix}:reviews:features"
        self._enqueue = client.register_script(ENQUEUE)
        self._decide = client.register_script(DECIDE)

    def key(self, review_id: str) -> str:
        return f"{self.prefix}:review:{review_id}"

    def index(self, feature: str, which: str) -> str:
        return f"{self.prefix}:reviews:{feature}:{which}"

    async def enqueue(self, case: ReviewCase, owner: str) -> bool:
        """Store the case pending: one round trip. False: the feature's queue is full of
        pending cases."""
        feature = case.feature
        keys = (
            self.key(case.id),
            self.index(feature, "all"),
            self.index(feature, "pending"),
            self.audit,
            self.features,
        )
        reply = await self._enqueue(
            keys=keys,
            args=(
                case.id,
                _ENCODER.encode(case),
                feature,
                case.created_ms,
                case.created_ms + self.retention_ms,
                self.max_per_feature,
                max(case.created_ms - self.retention_ms, 0),
                f"{self.prefix}:review:",
                case.caller,
                owner,
                case.reason,
            ),
        )
        return int(reply) == 1

    async def decide(self, review_id: str, decision: ReviewDecision, now_ms: int) -> Decided:
        """Record the decision if the review is pending: one round trip, audited."""
        reply = await self._decide(
            keys=(self.key(review_id), self.audit),
            args=(
                review_id,
                STATUS_OF[decision.decision],
                _ENCODER.encode(decision),
                decision.reviewer,
                f"{self.prefix}:reviews:",
                max(now_ms - self.retention_ms, 0),
                decision.decision,
            ),
        )
        result = int(reply[0])
        if result == MISSING:
            return Decided(MISSING)
        if result == ALREADY:
            previous = _DECISION.decode(reply[2]) if reply[2] else None
            return Decided(ALREADY, previous=previous, previous_status=bytes(reply[1]).decode())
        return Decided(DECIDED, case=_CASE.decode(reply[1]))

    async def get(self, review_id: str) -> StoredReview | None:
        fields = await self.client.hmget(self.key(review_id), ["c", "s", "o", "d"])
        return _stored(cast(list[bytes | None], fields))

    async def summaries(
        self, feature: str | None, status: ReviewStatus | None, limit: int
    ) -> list[ReviewSummary]:
        """Newest first, at most `limit` (pending: from the pending index; otherwise every
        kept case, filtered)."""
        features = [feature] if feature else sorted(await self._features())
        ids: list[tuple[float, str]] = []
        which = "pending" if status == "pending" else "all"
        for name in features:
            found = cast(
                list[tuple[bytes, float]],
                await self.client.zrevrange(
                    self.index(name, which), 0, self.max_per_feature - 1, withscores=True
                ),
            )
            ids.extend((score, raw.decode()) for raw, score in found)
        ids.sort(reverse=True)
        summaries: list[ReviewSummary] = []
        for stored in await self._many([review_id for _, review_id in ids]):
            if status is not None and stored.status != status:
                continue
            case = stored.case
            summaries.append(
                ReviewSummary(
                    id=case.id,
                    feature=case.feature,
                    status=stored.status,
                    reason=case.reason,
                    created_ms=case.created_ms,
                    groundedness=case.groundedness,
                )
            )
            if len(summaries) >= limit:
                break
        return summaries

    async def decided_rows(self, feature: str) -> list[DatasetRow]:
        """The feature's decided cases as dataset rows, oldest first: the reviewer's answer
        (the model's when approved, else the correction) is `expected.answer`; a rejection
        without a correction and a case whose input was not kept give no row."""
        found = cast(list[bytes], await self.client.zrange(self.index(feature, "all"), 0, -1))
        rows: list[DatasetRow] = []
        for stored in await self._many([raw.decode() for raw in found]):
            row = _row(stored)
            if row is not None:
                rows.append(row)
        return rows

    async def depth(self, feature: str) -> QueueDepth:
        pipe = self.client.pipeline(transaction=False)
        pending = self.index(feature, "pending")
        pipe.zcount(pending, max(int(time.time() * 1000) - self.retention_ms, 0), "+inf")
        pipe.zrange(pending, 0, 0, withscores=True)
        count, oldest = await pipe.execute()
        return QueueDepth(int(count), int(oldest[0][1]) if oldest else None)

    async def _features(self) -> set[str]:
        members = cast(set[bytes], await self.client.smembers(self.features))
        return {member.decode() for member in members}

    async def _many(self, review_ids: list[str]) -> list[StoredReview]:
        if not review_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for review_id in review_ids:
            pipe.hmget(self.key(review_id), ["c", "s", "o", "d"])
        replies = await pipe.execute()
        return [stored for stored in map(_stored, replies) if stored is not None]


def _stored(fields: list[bytes | None]) -> StoredReview | None:
    case, status, owner, decision = fields
    if case is None or status is None:
        return None
    return StoredReview(
        case=_CASE.decode(case),
        status=cast(ReviewStatus, status.decode()),
        owner=(owner or b"").decode(),
        decision=_DECISION.decode(decision) if decision else None,
    )


def _row(stored: StoredReview) -> DatasetRow | None:
    case, decision = stored.case, stored.decision
    if decision is None or (case.input is None and case.messages is None):
        return None
    kind: DecisionKind = decision.decision
    answer = case.output if kind == "approve" else decision.correction
    if not answer:
        return None
    tags = ["review", f"review:{STATUS_OF[kind]}", f"reason:{case.reason}", f"route:{case.route}"]
    if case.variant:
        tags.append(f"variant:{case.variant}"[:64])
    return DatasetRow(
        id=case.id,
        expected=Expected(answer=answer),
        input=case.input,
        messages=[RowMessage(m.role, m.content) for m in case.messages]
        if case.messages is not None
        else None,
        tags=tags,
    )
