"""The registry: immutable versions, labels moved by compare-and-set, rollback, audit.

Redis layout for artifact `n` of kind `k` under prefix `p`:
  p:reg:k:names                 set of artifact names
  p:reg:k:n:versions            hash  version -> StoredVersion JSON
  p:reg:k:n:hashes              hash  sha256 -> version (publish is idempotent)
  p:reg:k:n:labels              hash  label -> version
  p:reg:k:n:stack:<label>       list  versions the label pointed at before (rollback pops)
  p:reg:k:n:audit               list  AuditEntry JSON, oldest first
  p:reg:k:events                pub/sub channel of invalidation events
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import yaml
from redis.asyncio import Redis
from redis.exceptions import RedisError

from trivium.common.errors import InvalidInputError
from trivium.common.settings import RegistrySettings
from trivium.registry import scripts
from trivium.registry.cache import InvalidationListener, ResolveCache
from trivium.registry.errors import (
    ArtifactTooLargeError,
    LabelConflictError,
    NoEarlierVersionError,
    RegistryUnavailableError,
    UnknownArtifactError,
    UnknownLabelError,
    UnknownVersionError,
)
from trivium.registry.models import (
    ArtifactKind,
    ArtifactSummary,
    ArtifactVersion,
    AuditEntry,
    LabelMove,
    PublishResult,
    StoredVersion,
)
from trivium.registry.references import (
    Reference,
    parse_reference,
    validate_label,
    validate_name,
)

__all__ = ("ABSENT", "Registry", "default_actor")

ABSENT = 0
"""Pass as `expected_current` to require that the label does not exist yet."""

T = TypeVar("T")
_json = msgspec.json.Encoder()


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def content_hash(body: str, metadata: dict[str, Any]) -> str:
    canonical = msgspec.json.encode({"body": body, "metadata": metadata}, order="sorted")
    return hashlib.sha256(canonical).hexdigest()


class Registry:
    """Versioned artifacts of one kind, in Redis, with an invalidated in-process cache."""

    def __init__(
        self,
        client: Redis,
        kind: ArtifactKind,
        settings: RegistrySettings | None = None,
        *,
        cache: bool = True,
    ) -> None:
        self.kind = kind
        self.settings = settings or RegistrySettings()
        self._client = client
        self._base = f"{self.settings.key_prefix}:reg:{kind.name}"
        self.channel = f"{self._base}:events"
        self._cache = ResolveCache(kind.name) if cache else None
        self._listener = (
            InvalidationListener(client, self.channel, self._cache) if self._cache else None
        )
        self._publish = client.register_script(scripts.PUBLISH)
        self._promote = client.register_script(scripts.PROMOTE)
        self._rollback = client.register_script(scripts.ROLLBACK)
        self._resolve = client.register_script(scripts.RESOLVE)

    async def start(self) -> None:
        if self._listener is not None:
            await self._listener.start()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.stop()

    def on_change(self, callback: Callable[[str | None], None]) -> None:
        """Call `callback(name)` after each change to artifact `name` made by any process,
        and `callback(None)` when changes may have been missed (on every (re)subscription).
        Needs the cache (and so the listener) enabled."""
        if self._listener is None:
            raise RuntimeError("change notifications need a Registry created with cache=True")
        self._listener.callbacks.append(callback)

    @property
    def cache_subscribed(self) -> bool:
        return self._cache is not None and self._cache.subscribed

    def is_cached(self, ref: str) -> bool:
        """`resolve(ref)` would answer from this process's cache (so, while Redis is down)."""
        return self._cache is not None and self._cache.contains(ref)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    def _key(self, name: str, part: str) -> str:
        return f"{self._base}:{name}:{part}"

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailableError(
                f"registry store unreachable during {what}: {exc}", retry_after_s=2
            ) from exc

    # -- writes ---------------------------------------------------------------

    async def publish(
        self,
        name: str,
        body: str,
        metadata: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> PublishResult:
        validate_name(name)
        self._check_size(body, metadata or {})
        normalised = self.kind.validate(body, dict(metadata or {}))
        sha = content_hash(body, normalised)
        stored = StoredVersion(sha, body, normalised, time.time(), actor or default_actor())
        keys = [self._key(name, p) for p in ("versions", "hashes", "audit")] + [
            f"{self._base}:names"
        ]
        args: list[str | bytes] = [
            sha,
            _json.encode(stored),
            stored.created_by,
            repr(stored.created_at),
            name,
            self.channel,
        ]
        created, version = await self._call("publish", lambda: self._publish(keys=keys, args=args))
        if created:
            return PublishResult(self._artifact(name, int(version), stored), created=True)
        return PublishResult(await self.get(name, int(version)), created=False)

    def _check_size(self, body: str, metadata: dict[str, Any]) -> None:
        size = len(body.encode())
        if size > self.settings.max_body_bytes:
            raise ArtifactTooLargeError(
                f"body is {size} bytes; the limit is {self.settings.max_body_bytes}", field="body"
            )
        meta_size = len(_json.encode(metadata))
        if meta_size > self.settings.max_metadata_bytes:
            raise ArtifactTooLargeError(
                f"metadata is {meta_size} bytes; the limit is {self.settings.max_metadata_bytes}",
                field="metadata",
            )

    async def promote(
        self,
        name: str,
        label: str,
        version: int,
        *,
        expected_current: int | None = None,
        actor: str | None = None,
    ) -> LabelMove:
        """Point `label` at `version`; with `expected_current`, only if it points there now."""
        validate_name(name)
        validate_label(label)
        keys = [
            self._key(name, "versions"),
            self._key(name, "labels"),
            self._key(name, f"stack:{label}"),
            self._key(name, "audit"),
        ]
        expected = "" if expected_current is None else str(expected_current)
        args = [
            label,
            str(version),
            expected,
            actor or default_actor(),
            repr(time.time()),
            name,
            self.channel,
        ]
        result = await self._call("promote", lambda: self._promote(keys=keys, args=args))
        status = _text(result[0])
        if status == "no_version":
            await self._require_artifact(name)
            raise UnknownVersionError(f"{name} has no version {version}", field="version")
        current = int(result[1]) or None
        self._invalidate_local(name)
        if status == "conflict":
            raise LabelConflictError(
                f"{name}@{label} points at {_describe(current)}, not {_describe(expected_current)}",
                field="expected_current",
                extra={"current": current},
            )
        return LabelMove(name, label, current, version, changed=status == "ok")

    async def rollback(
        self,
        name: str,
        label: str,
        *,
        expected_current: int | None = None,
        actor: str | None = None,
    ) -> LabelMove:
        """Move `label` back to the version it pointed at before its last move."""
        validate_name(name)
        validate_label(label)
        keys = [
            self._key(name, "labels"),
            self._key(name, f"stack:{label}"),
            self._key(name, "audit"),
        ]
        expected = "" if expected_current is None else str(expected_current)
        args = [label, expected, actor or default_actor(), repr(time.time()), name, self.channel]
        result = await self._call("rollback", lambda: self._rollback(keys=keys, args=args))
        status = _text(result[0])
        if status == "no_label":
            await self._require_artifact(name)
            raise UnknownLabelError(f"{name} has no label {label!r}", field="label")
        self._invalidate_local(name)
        if status == "conflict":
            raise LabelConflictError(
                f"{name}@{label} points at {_text(result[1])}, not {expected_current}",
                field="expected_current",
                extra={"current": int(result[1])},
            )
        if status == "no_history":
            raise NoEarlierVersionError(
                f"{name}@{label} is at its first entry (version {_text(result[1])}); "
                "there is nothing earlier to roll back to",
                field="label",
            )
        return LabelMove(name, label, int(result[1]), int(result[2]), changed=True)

    def _invalidate_local(self, name: str) -> None:
        """Read-your-writes in this process, without waiting for the pub/sub echo."""
        if self._cache is not None:
            self._cache.invalidate(name)

    # -- reads ----------------------------------------------------------------

    async def resolve(self, ref: str) -> ArtifactVersion:
        """`name`, `name@label` or `name@3` to a version; served from cache when possible."""
        cache = self._cache
        if cache is not None:
            cached = cache.get(ref)
            if cached is not None:
                return cached
            generation = cache.generation()
        parsed = parse_reference(ref)
        artifact = await self._fetch(parsed)
        if cache is not None:
            cache.put(ref, artifact, by_label=parsed.label is not None, generation=generation)
        return artifact

    async def get(self, name: str, version: int) -> ArtifactVersion:
        return await self._fetch(Reference(validate_name(name), version=version))

    async def _fetch(self, ref: Reference) -> ArtifactVersion:
        keys = [self._key(ref.name, "versions"), self._key(ref.name, "labels")]
        args = ["" if ref.version is None else str(ref.version), ref.label or ""]
        result = await self._call("resolve", lambda: self._resolve(keys=keys, args=args))
        status = _text(result[0])
        if status == "no_artifact":
            raise UnknownArtifactError(f"no {self.kind.name} named {ref.name!r}", field="name")
        if status == "no_label":
            raise UnknownLabelError(f"{ref.name} has no label {ref.label!r}", field="label")
        if status == "no_version":
            raise UnknownVersionError(f"{ref.name} has no version {ref.version}", field="version")
        stored = msgspec.json.decode(result[2], type=StoredVersion)
        return self._artifact(ref.name, int(result[1]), stored)

    async def _require_artifact(self, name: str) -> None:
        exists = await self._call(
            "lookup", lambda: self._client.exists(self._key(name, "versions"))
        )
        if not exists:
            raise UnknownArtifactError(f"no {self.kind.name} named {name!r}", field="name")

    async def labels(self, name: str) -> dict[str, int]:
        validate_name(name)
        await self._require_artifact(name)
        raw = await self._call("labels", lambda: self._client.hgetall(self._key(name, "labels")))
        return {_text(k): int(v) for k, v in sorted(raw.items())}

    async def label_stack(self, name: str, label: str) -> list[int]:
        """The versions `label` would roll back to, oldest first."""
        validate_label(label)
        raw = await self._call(
            "label history", lambda: self._client.lrange(self._key(name, f"stack:{label}"), 0, -1)
        )
        return [int(v) for v in raw]

    async def history(self, name: str, limit: int | None = None) -> list[AuditEntry]:
        """The audit log of `name`, oldest first (the newest `limit` entries if given)."""
        validate_name(name)
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}", field="limit")
        await self._require_artifact(name)
        start = 0 if limit is None else -limit
        raw = await self._call(
            "history", lambda: self._client.lrange(self._key(name, "audit"), start, -1)
        )
        return [msgspec.json.decode(entry, type=AuditEntry) for entry in raw]

    async def versions(self, name: str) -> list[ArtifactVersion]:
        validate_name(name)
        raw = await self._call(
            "versions", lambda: self._client.hgetall(self._key(name, "versions"))
        )
        if not raw:
            raise UnknownArtifactError(f"no {self.kind.name} named {name!r}", field="name")
        decoded = (
            self._artifact(name, int(v), msgspec.json.decode(r, type=StoredVersion))
            for v, r in raw.items()
        )
        return sorted(decoded, key=lambda artifact: artifact.version)

    async def list(self) -> list[ArtifactSummary]:
        async def fetch() -> list[ArtifactSummary]:
            names = sorted(_text(n) for n in await self._client.smembers(f"{self._base}:names"))
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hlen(self._key(name, "versions"))
                pipe.hgetall(self._key(name, "labels"))
            replies = await pipe.execute()
            return [
                ArtifactSummary(
                    name,
                    int(replies[2 * i]),
                    {_text(k): int(v) for k, v in sorted(replies[2 * i + 1].items())},
                )
                for i, name in enumerate(names)
            ]

        return await self._call("list", fetch)

    async def diff(self, name: str, old: str, new: str) -> str:
        """Unified diff between two references of `name` (versions or labels), metadata first."""
        before = await self.resolve(_qualify(name, old))
        after = await self.resolve(_qualify(name, new))
        return "".join(
            difflib.unified_diff(
                _document(before).splitlines(keepends=True),
                _document(after).splitlines(keepends=True),
                fromfile=f"{name}@{before.version}",
                tofile=f"{name}@{after.version}",
            )
        )

    def _artifact(self, name: str, version: int, stored: StoredVersion) -> ArtifactVersion:
        return ArtifactVersion(
            kind=self.kind.name,
            name=name,
            version=version,
            sha256=stored.sha256,
            body=stored.body,
            metadata=stored.metadata,
            created_at=stored.created_at,
            created_by=stored.created_by,
        )


def _qualify(name: str, selector: str) -> str:
    return f"{name}@{selector}"


def _document(artifact: ArtifactVersion) -> str:
    front = yaml.safe_dump(artifact.metadata, sort_keys=True) if artifact.metadata else ""
    return f"---\n{front}---\n{artifact.body}" + ("" if artifact.body.endswith("\n") else "\n")


def _describe(version: int | None) -> str:
    return "no version (label absent)" if not version else f"version {version}"


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
