"""Caller keys in Redis: create, read, list, rotate, revoke, each audited with its actor.

Layout under prefix `p` (`registry.key_prefix`). Every key of one caller key carries the
hash tag `{<key id>}`, so the record, its audit log and its limiter counters live in one
Redis Cluster slot and each script touches one slot only:
  p:key:{id}                    string  KeyRecord JSON (the secret's HMAC, never the secret)
  p:key:{id}:audit              list    KeyAuditEntry JSON, oldest first
  p:key:{id}:req, :tok, :tokamt limiter: request log, token log, token amounts (limiter.py)
  p:key:{id}:f:<feature>:...    the same per feature, when the policy limits the feature
  p:key:{id}:spend:d:<yyyymmdd> micro-USD spent that UTC day (expires after 2 days)
  p:key:{id}:spend:m:<yyyymm>   micro-USD spent that UTC month (expires after 32 days)
Two cross-slot indexes, written outside the scripts (a reader skips dangling entries):
  p:keys:ids                    set   every key id
  p:keys:names                  hash  active key name -> id (names are unique among them)
  p:keys:events                 pub/sub channel of {"name": <key id>, "action"} (cluster-wide)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.gateway.callers.errors import KeyNameTakenError, KeysUnavailableError, UnknownKeyError
from trivium.gateway.callers.keys import (
    KeyRecord,
    Scope,
    format_key,
    hash_secret,
    new_key_id,
    new_secret,
)

__all__ = ("CreatedKey", "KeyAuditEntry", "KeySpec", "KeyStore")

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode

# KEYS: record, audit. ARGV: record JSON, audit JSON, channel, event JSON
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: record, audit. ARGV: expected record JSON, new record JSON, audit JSON, channel, event
_UPDATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


class KeySpec(msgspec.Struct, frozen=True, kw_only=True):
    """What an admin chooses for a new key (validated by the API's request struct)."""

    name: str
    owner: str
    features: tuple[str, ...]
    scopes: tuple[Scope, ...] = ("invoke",)
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_day: float | None = None
    budget_usd_month: float | None = None
    expires_at: float | None = None


class CreatedKey(msgspec.Struct, frozen=True):
    record: KeyRecord
    key: str
    """The full key: shown once, never stored."""


class KeyAuditEntry(msgspec.Struct, frozen=True):
    ts: float
    actor: str
    action: Literal["create", "rotate", "revoke"]
    name: str


class _Event(msgspec.Struct, frozen=True):
    name: str
    """The key id (the registry listener's event shape)."""
    action: str


class KeyStore:
    def __init__(self, client: Redis, prefix: str, pepper: bytes) -> None:
        self._client = client
        self._prefix = prefix
        self._pepper = pepper
        self.channel = f"{prefix}:keys:events"
        self._ids = f"{prefix}:keys:ids"
        self._names = f"{prefix}:keys:names"
        self._create = client.register_script(_CREATE)
        self._update = client.register_script(_UPDATE)

    @property
    def pepper(self) -> bytes:
        return self._pepper

    def record_key(self, key_id: str) -> str:
        return f"{self._prefix}:key:{{{key_id}}}"

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            raise KeysUnavailableError(
                f"key store unreachable during {what}; retry shortly", retry_after_s=2
            ) from exc

    # -- reads ----------------------------------------------------------------------

    async def fetch(self, key_id: str) -> KeyRecord | None:
        """The record, or None; raises RedisError (the auth cache decides what that means)."""
        raw = await self._client.get(self.record_key(key_id))
        return None if raw is None else msgspec.json.decode(raw, type=KeyRecord)

    async def get(self, key_id: str) -> KeyRecord:
        record = await self._call("get", lambda: self.fetch(key_id))
        if record is None:
            raise UnknownKeyError(f"no key {key_id!r}", field="key_id")
        return record

    async def all(self) -> list[KeyRecord]:
        async def read() -> list[KeyRecord]:
            members: set[bytes] = await self._client.smembers(self._ids)  # type: ignore[assignment]
            ids = sorted(i.decode() for i in members)
            if not ids:
                return []
            raws = await self._client.mget([self.record_key(i) for i in ids])
            return [msgspec.json.decode(r, type=KeyRecord) for r in raws if r is not None]

        records = await self._call("list", read)
        return sorted(records, key=lambda r: (r.name, r.created_at))

    async def history(self, key_id: str) -> list[KeyAuditEntry]:
        await self.get(key_id)
        raws = await self._call(
            "history",
            lambda: self._client.lrange(f"{self.record_key(key_id)}:audit", 0, -1),
        )
        return [msgspec.json.decode(r, type=KeyAuditEntry) for r in raws]

    # -- writes ---------------------------------------------------------------------

    async def create(self, spec: KeySpec, actor: str) -> CreatedKey:
        key_id, secret = new_key_id(), new_secret()
        now = time.time()
        record = KeyRecord(
            id=key_id,
            name=spec.name,
            owner=spec.owner,
            features=spec.features,
            scopes=spec.scopes,
            secret_hash=hash_secret(self._pepper, secret),
            created_at=now,
            created_by=actor,
            rpm=spec.rpm,
            tpm=spec.tpm,
            budget_usd_day=spec.budget_usd_day,
            budget_usd_month=spec.budget_usd_month,
            expires_at=spec.expires_at,
        )
        reserved = await self._call(
            "create",
            lambda: self._client.hsetnx(self._names, spec.name, key_id),
        )
        if not reserved:
            raise KeyNameTakenError(
                f"an active key is already named {spec.name!r}; revoke it or pick another name",
                field="name",
            )
        created = await self._call(
            "create",
            lambda: self._create(
                keys=[self.record_key(key_id), f"{self.record_key(key_id)}:audit"],
                args=[
                    _encode(record),
                    _encode(KeyAuditEntry(now, actor, "create", spec.name)),
                    self.channel,
                    _encode(_Event(key_id, "create")),
                ],
            ),
        )
        if not created:  # a 12-character id collided: astronomically rare
            await self._call("create", lambda: self._client.hdel(self._names, spec.name))
            return await self.create(spec, actor)
        await self._call("create", lambda: self._client.sadd(self._ids, key_id))
        return CreatedKey(record, format_key(key_id, secret))

    async def rotate(self, key_id: str, actor: str) -> CreatedKey:
        """A new secret for the same key (limits and spend carry on); the old one stops now."""
        secret = new_secret()

        def change(record: KeyRecord) -> KeyRecord:
            if record.revoked_at is not None:
                raise UnknownKeyError(f"key {key_id!r} is revoked", field="key_id")
            return msgspec.structs.replace(
                record, secret_hash=hash_secret(self._pepper, secret), rotated_at=time.time()
            )

        record = await self._change(key_id, actor, "rotate", change)
        return CreatedKey(record, format_key(key_id, secret))

    async def revoke(self, key_id: str, actor: str) -> KeyRecord:
        def change(record: KeyRecord) -> KeyRecord:
            if record.revoked_at is not None:
                return record
            return msgspec.structs.replace(record, revoked_at=time.time())

        record = await self._change(key_id, actor, "revoke", change)

        async def free_name() -> None:
            if await self._client.hget(self._names, record.name) == key_id.encode():
                await self._client.hdel(self._names, record.name)

        await self._call("revoke", free_name)
        return record

    async def _write(self, key: str, args: list[bytes | str]) -> int:
        written: int = await self._update(keys=[key, f"{key}:audit"], args=args)
        return written

    async def _change(
        self,
        key_id: str,
        actor: str,
        action: Literal["rotate", "revoke"],
        change: Callable[[KeyRecord], KeyRecord],
    ) -> KeyRecord:
        """Compare-and-set on the record's JSON, retried when another write got in first."""
        key = self.record_key(key_id)
        while True:
            raw = await self._call(action, lambda: self._client.get(key))
            if raw is None:
                raise UnknownKeyError(f"no key {key_id!r}", field="key_id")
            current = msgspec.json.decode(raw, type=KeyRecord)
            updated = change(current)
            if updated is current:
                return current
            entry = KeyAuditEntry(time.time(), actor, action, current.name)
            args: list[bytes | str] = [raw, _encode(updated), _encode(entry), self.channel]
            args.append(_encode(_Event(key_id, action)))
            written = await self._call(action, functools.partial(self._write, key, args))
            if written:
                return updated
