"""Feedback in Redis: ONE script call per feedback request, and the corrections stream.

The script reads the answer's record and, when it exists (or this process hands it over,
not yet flushed), stores the event as the answer's last of its kind and returns the record
and the event it replaced; a `corrected` event is also appended to the corrections stream,
trimmed to the retention:

    <prefix>:answer:<id>            hash (see records.py): `r` record, `k:<kind>` last event
    <prefix>:feedback:corrections   stream: `answer`, `record`, `event` per correction

The two keys are not in one Redis Cluster slot: like the stats window and the cache, this
runs against one Redis (or a primary with replicas).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import msgspec
from redis.asyncio import Redis

from trivium.common.contracts.datasets import DatasetRow, Expected, RowMessage
from trivium.gateway.feedback.records import AnswerInput, AnswerLog, Attribution, answer_key
from trivium.gateway.feedback.schemas import Correction, FeedbackKind

__all__ = ("CorrectionsPage", "FeedbackEvent", "FeedbackStore", "Stored")

SUBMIT = """
local record = redis.call('HGET', KEYS[1], 'r')
if not record then
  if ARGV[3] == '' then return {0} end
  record = ARGV[3]
  redis.call('HSET', KEYS[1], 'r', record)
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
if ARGV[5] ~= '*' then
  local feature = cjson.decode(record)['feature']
  if not string.find(ARGV[5], ',' .. feature .. ',', 1, true) then return {2, record} end
end
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[7], '*',
             'answer', ARGV[8], 'record', record, 'event', ARGV[2])
end
return {1, record, previous or ''}
"""
FOUND, MISSING, FORBIDDEN = 1, 0, 2
SCAN_BATCH = 500


class FeedbackEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One stored event: value, time (ms), and what came with it."""

    v: bool | int | str
    t: int
    c: str | None = None
    x: str | Correction | None = None
    u: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    """FOUND, MISSING (no such answer) or FORBIDDEN (the answer's feature is not the key's)."""
    record: Attribution | None = None
    previous: FeedbackEvent | None = None


@dataclass(frozen=True, slots=True)
class CorrectionsPage:
    rows: list[DatasetRow]
    next_cursor: str | None
    """Pass as `cursor` for the entries after these; None once the stream is read to its end."""


_RECORD = msgspec.json.Decoder(Attribution)
_RECORD_WITH_INPUT = msgspec.json.Decoder(AnswerInput)
_EVENT = msgspec.json.Decoder(FeedbackEvent)
_ENCODER = msgspec.json.Encoder()


class FeedbackStore:
    def __init__(self, client: Redis, prefix: str, answers: AnswerLog) -> None:
        self.client = client
        self.prefix = prefix
        self.answers = answers
        self.stream = f"{prefix}:feedback:corrections"
        self._submit = client.register_script(SUBMIT)

    async def submit(
        self,
        answer_id: str,
        kind: FeedbackKind,
        event: FeedbackEvent,
        *,
        features: frozenset[str] | None,
        now_ms: int,
    ) -> Stored:
        """Store `event` as the answer's last of `kind`: one round trip. `features`: the
        features the caller may see (None: all)."""
        pending = self.answers.pending(answer_id)
        allowed = "*" if features is None else "," + ",".join(sorted(features)) + ","
        keys = (answer_key(self.prefix, answer_id), self.stream)
        reply = await self._submit(
            keys=keys,
            args=(
                f"k:{kind}",
                _ENCODER.encode(event),
                pending or b"",
                self.answers.expires_at_ms(answer_id),
                allowed,
                "1" if kind == "corrected" else "0",
                max(now_ms - self.answers.retention_ms, 0),
                answer_id,
            ),
        )
        status = int(reply[0])
        if status == MISSING:
            return Stored(MISSING)
        record = _RECORD.decode(reply[1])
        if status == FORBIDDEN:
            return Stored(FORBIDDEN, record)
        previous = _EVENT.decode(reply[2]) if reply[2] else None
        return Stored(FOUND, record, previous)

    async def corrections(
        self, feature: str, since_ms: int, cursor: str | None, limit: int, max_scan: int
    ) -> CorrectionsPage:
        """Candidate dataset rows from the corrections of `feature`'s answers whose input was
        kept, oldest first; an answer corrected twice in the page gives its last correction.
        Reads at most `max_scan` stream entries (of every feature)."""
        start = f"({cursor}" if cursor else f"{since_ms}-0"
        rows: dict[str, DatasetRow] = {}
        scanned = 0
        last: str | None = None
        while scanned < max_scan and len(rows) < limit:
            count = min(SCAN_BATCH, max_scan - scanned)
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self.client.xrange(self.stream, min=start, max="+", count=count),
            )
            if not entries:
                return CorrectionsPage(list(rows.values()), None)
            for entry_id, fields in entries:
                scanned += 1
                last = entry_id.decode()
                row = _row(fields, feature)
                if row is not None:
                    rows.pop(row.id, None)
                    rows[row.id] = row
                    if len(rows) >= limit:
                        break
            start = f"({last}"
            if len(entries) < count:
                more = await self.client.xrange(self.stream, min=start, max="+", count=1)
                return CorrectionsPage(list(rows.values()), last if more else None)
        return CorrectionsPage(list(rows.values()), last)


def _row(fields: dict[bytes, bytes], feature: str) -> DatasetRow | None:
    record = _RECORD_WITH_INPUT.decode(fields[b"record"])
    if record.feature != feature or (record.input is None and record.messages is None):
        return None
    correction = _EVENT.decode(fields[b"event"]).x
    if isinstance(correction, Correction):
        expected = Expected(label=correction.label, answer=correction.answer)
    elif correction is not None:
        expected = Expected(answer=correction)
    else:
        return None
    tags = ["feedback", f"route:{record.route}"]
    if record.variant:
        tags.append(f"variant:{record.variant}"[:64])
    return DatasetRow(
        id=fields[b"answer"].decode(),
        expected=expected,
        input=record.input,
        messages=[RowMessage(m["role"], m["content"]) for m in record.messages]
        if record.messages is not None
        else None,
        tags=tags,
    )
