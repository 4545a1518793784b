"""The active policy: loaded at start-up, swapped whole on a good reload, never on a bad one.

A request reads `holder.current` once and keeps that object; a reload replaces the
reference, so a request in flight finishes on the policy it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
from prometheus_client import Counter, Gauge

from trivium.common.aio import cancel_and_wait
from trivium.common.errors import ConflictError
from trivium.common.metrics_multiprocess import multiprocess_enabled
from trivium.gateway.policy.errors import ROOT, InvalidPolicyError, PolicyIssue
from trivium.gateway.policy.loader import parse_policy
from trivium.gateway.policy.model import Policy, policy_hash

__all__ = ("INFO", "RELOADS", "LoadedPolicy", "NoPolicyFileError", "PolicyHolder", "ReloadOutcome")

log = logging.getLogger(__name__)

RELOADS = Counter(
    "trivium_policy_reloads_total",
    "Policy reloads (file change or POST /v1/policy:reload).",
    ["result"],  # ok, unchanged, invalid
)
INFO = Gauge(
    "trivium_policy_info",
    "The active routing policy (1).",
    ["hash", "version"],
    multiprocess_mode="livemax",
)


class NoPolicyFileError(ConflictError):
    code = "no_policy_file"


class LoadedPolicy:
    """The active policy with where and when it was loaded.

    A plain class on purpose: Litestar converts msgspec-typed dependencies on every request,
    and a request should get this very object, not a copy.
    """

    __slots__ = ("hash", "loaded_at", "policy", "source")

    def __init__(self, policy: Policy, hash: str, source: str | None, loaded_at: float) -> None:
        self.policy = policy
        self.hash = hash
        self.source = source
        """The file it came from; None when no policy file is configured."""
        self.loaded_at = loaded_at


class ReloadOutcome(msgspec.Struct, frozen=True):
    result: Literal["ok", "unchanged"]
    hash: str
    version: int | None


def _fingerprint(data: bytes | OSError) -> str:
    if isinstance(data, OSError):
        return f"unreadable:{data.errno}"
    return hashlib.sha256(data).hexdigest()


class PolicyHolder:
    """Holds the active policy; raises `InvalidPolicyError` when the initial file is invalid."""

    def __init__(self, path: Path | None, poll_s: float = 1.0) -> None:
        self.path = path
        self.poll_s = poll_s
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._current = LoadedPolicy(Policy(), policy_hash(Policy()), None, time.time())
        self._seen = ""
        self._before_swap: list[Callable[[Policy], None]] = []
        if path is None:
            log.info("no policy file configured: serving an empty policy")
        else:
            self._load_initial(path)
        self._publish(None, self._current)

    def _load_initial(self, path: Path) -> None:
        data = self._read()
        self._seen = _fingerprint(data)
        if isinstance(data, FileNotFoundError):
            log.warning(
                "policy file not found: serving an empty policy", extra={"source": str(path)}
            )
            self._current = LoadedPolicy(Policy(), self._current.hash, str(path), time.time())
            return
        try:
            policy = parse_policy(self._readable(data), str(path))
        except InvalidPolicyError as exc:
            log.error(
                "policy file invalid: the gateway cannot start",
                extra={"source": str(path), "errors": exc.extra["errors"]},
            )
            raise
        self._current = LoadedPolicy(policy, policy_hash(policy), str(path), time.time())

    def before_swap(self, prepare: Callable[[Policy], None]) -> None:
        """Call `prepare(new_policy)` before a reloaded policy becomes active (e.g. to open
        clients for its new upstreams), so no request sees a policy that is not ready."""
        self._before_swap.append(prepare)

    @property
    def current(self) -> LoadedPolicy:
        return self._current

    async def reload(self, trigger: str = "api") -> ReloadOutcome:
        """Read the file now; on `InvalidPolicyError` the last good policy stays active."""
        if self.path is None:
            raise NoPolicyFileError("no policy file is configured (gateway.policy_file)")
        async with self._lock:
            data = await asyncio.to_thread(self._read)
            return await self._apply(data, trigger)

    def start(self) -> None:
        """Watch the file for changes (needs a running event loop)."""
        if self.path is not None and self._task is None:
            self._task = asyncio.create_task(self._watch(), name="policy-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                async with self._lock:
                    data = await asyncio.to_thread(self._read)
                    if _fingerprint(data) != self._seen:
                        await self._apply(data, "watch")
            except InvalidPolicyError:
                pass  # counted and logged by _apply
            except Exception:
                log.exception("policy watch failed; retrying")

    def _read(self) -> bytes | OSError:
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            return exc

    def _readable(self, data: bytes | OSError) -> bytes:
        if isinstance(data, OSError):
            issue = PolicyIssue(ROOT, f"cannot read: {data}")
            raise InvalidPolicyError(str(self.path), [issue])
        return data

    async def _apply(self, data: bytes | OSError, trigger: str) -> ReloadOutcome:
        self._seen = _fingerprint(data)
        source = str(self.path)
        try:
            policy = await asyncio.to_thread(parse_policy, self._readable(data), source)
        except InvalidPolicyError as exc:
            RELOADS.labels("invalid").inc()
            log.error(
                "policy rejected: the last good policy keeps serving",
                extra={
                    "source": source,
                    "trigger": trigger,
                    "errors": exc.extra["errors"],
                    "active_hash": self._current.hash,
                },
            )
            raise
        digest = policy_hash(policy)
        if digest == self._current.hash:
            RELOADS.labels("unchanged").inc()
            return ReloadOutcome("unchanged", digest, policy.version)
        for prepare in self._before_swap:
            prepare(policy)
        previous, self._current = self._current, LoadedPolicy(policy, digest, source, time.time())
        self._publish(previous, self._current)
        RELOADS.labels("ok").inc()
        log.info(
            "policy loaded",
            extra={
                "source": source,
                "trigger": trigger,
                "hash": digest,
                "previous_hash": previous.hash,
                "version": policy.version,
                "features": len(policy.features),
            },
        )
        return ReloadOutcome("ok", digest, policy.version)

    @staticmethod
    def _publish(previous: LoadedPolicy | None, active: LoadedPolicy) -> None:
        if previous is not None:
            if multiprocess_enabled():  # a worker's metric file cannot forget a series
                INFO.labels(previous.hash, _version_label(previous)).set(0)
            else:
                with contextlib.suppress(KeyError):
                    INFO.remove(previous.hash, _version_label(previous))
        INFO.labels(active.hash, _version_label(active)).set(1)


def _version_label(loaded: LoadedPolicy) -> str:
    return "" if loaded.policy.version is None else str(loaded.policy.version)
