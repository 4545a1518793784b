"""Answer records: what served each answer, kept in Redis for the retention, for feedback.

The invoke path only appends to an in-memory buffer (`AnswerLog.add`: no I/O, no encoding);
a background loop writes the buffer every `flush_s` in one pipelined round trip. A feedback
request reaching the replica that served an answer not yet flushed hands the record to the
feedback script itself (`pending`), so it is never refused for that lag. Layout:

    <prefix>:answer:<answer id>   hash, expiring at the answer's creation + retention:
                                  `r` the record (JSON), `k:<kind>` the last feedback event
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from trivium.common.aio import Periodic
from trivium.common.logs import LogThrottle
from trivium.gateway.feedback.ids import answer_created_ms
from trivium.gateway.feedback.metrics import FEEDBACK_METRICS

if TYPE_CHECKING:  # the invoke path imports this module while `invoke` is being imported
    from trivium.gateway.invoke.schemas import InvokeRequest, InvokeResponse

__all__ = ("AnswerInput", "AnswerLog", "AnswerRecord", "Attribution", "answer_key")

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0


class Attribution(msgspec.Struct, frozen=True, omit_defaults=True):
    """Exactly what served one answer (a record read back, its input skipped)."""

    feature: str
    route: str
    policy_hash: str
    created_ms: int
    variant: str | None = None
    template: str | None = None
    adapter: str | None = None
    policy_version: int | None = None
    retriever_index: str | None = None
    upstream: str | None = None
    fallback_from: str | None = None


class AnswerRecord(Attribution, frozen=True, omit_defaults=True):
    """What is written: the attribution, and `input`/`messages` when small enough to keep."""

    input: msgspec.Raw | None = None
    messages: msgspec.Raw | None = None


class AnswerInput(Attribution, frozen=True, omit_defaults=True):
    """A record read back with its input (the corrections export)."""

    input: dict[str, Any] | None = None
    messages: list[dict[str, str]] | None = None


def answer_key(prefix: str, answer_id: str) -> str:
    return f"{prefix}:answer:{answer_id}"


_Pending = tuple["InvokeRequest", "InvokeResponse"]


class AnswerLog:
    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        retention_s: int,
        flush_s: float,
        max_input_bytes: int,
        max_buffered: int,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_ms = retention_s * 1000
        self.max_input_bytes = max_input_bytes
        self.max_buffered = max_buffered
        self._buffer: dict[str, _Pending] = {}
        self._writing: dict[str, _Pending] = {}
        """The batch a flush is writing: still `pending` until Redis has it."""
        self._loop = Periodic("answer-records", flush_s, self.flush, log)
        self._throttle = LogThrottle(log, LOG_INTERVAL_S)
        self._encoder = msgspec.json.Encoder()

    def add(self, request: InvokeRequest, response: InvokeResponse) -> None:
        """Keep the answer for the next flush (no I/O); the oldest go beyond `max_buffered`."""
        buffer = self._buffer
        if len(buffer) >= self.max_buffered:
            del buffer[next(iter(buffer))]
            FEEDBACK_METRICS.records_dropped.inc()
        buffer[response.id] = (request, response)

    def pending(self, answer_id: str) -> bytes | None:
        """The record of an answer this process served and has not written yet."""
        entry = self._buffer.get(answer_id) or self._writing.get(answer_id)
        return None if entry is None else self.encode(*entry)

    def encode(self, request: InvokeRequest, response: InvokeResponse) -> bytes:
        lineage = response.lineage
        fallback = response.fallback
        record = AnswerRecord(
            feature=response.feature,
            route=response.route,
            policy_hash=lineage.policy_hash,
            created_ms=answer_created_ms(response.id) or int(time.time() * 1000),
            variant=response.variant,
            template=lineage.template,
            adapter=lineage.adapter,
            policy_version=lineage.policy_version,
            retriever_index=lineage.retriever_index,
            upstream=lineage.upstream,
            fallback_from=fallback.from_route if fallback is not None else None,
            input=self._small(request.input),
            messages=self._small(request.messages),
        )
        return self._encoder.encode(record)

    def _small(self, value: Any) -> msgspec.Raw | None:
        if value is None or not self.max_input_bytes:
            return None
        raw = self._encoder.encode(value)
        return msgspec.Raw(raw) if len(raw) <= self.max_input_bytes else None

    def expires_at_ms(self, answer_id: str) -> int:
        created = answer_created_ms(answer_id) or int(time.time() * 1000)
        return created + self.retention_ms

    async def flush(self) -> None:
        """Write the buffer in one pipelined round trip; keep it (bounded) on a Redis error."""
        if not self._buffer:
            return
        pending, self._buffer = self._buffer, {}
        self._writing = pending
        pipe = self.client.pipeline(transaction=False)
        for answer_id, entry in pending.items():
            key = answer_key(self.prefix, answer_id)
            pipe.hset(key, "r", self.encode(*entry))
            pipe.pexpireat(key, self.expires_at_ms(answer_id))
        try:
            await pipe.execute()
        except (redis_errors.RedisError, OSError) as exc:
            self._writing = {}
            for answer_id, entry in pending.items():  # older first, then what came since
                if len(self._buffer) < self.max_buffered:
                    self._buffer.setdefault(answer_id, entry)
            self._throttle.warning(
                "flush",
                "answer records not written; buffering",
                extra={"error": repr(exc), "buffered": len(self._buffer)},
            )
            return
        self._writing = {}
        FEEDBACK_METRICS.records_written.inc(len(pending))
        self._throttle.reset("flush")

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self.flush()
