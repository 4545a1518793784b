"""Keeping vLLM's runtime LoRA adapters equal to the set the registry wants.

vLLM forgets adapters loaded at runtime when it restarts (vllm-project/vllm#12174), so the
model service syncs on start, on every registry change (the trigger event) and periodically.
A pass lists what vLLM holds, unloads adapters that are not wanted (never a base model), then
loads the missing ones. At most `max_loras` are kept: the wanted names in sorted order, the
rest reported as skipped. An adapter loaded under the same name from another path is reloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import msgspec

from trivium.common.errors import TriviumError
from trivium.model.vllm.client import VllmClient

__all__ = ("AdapterSync", "DesiredAdapters", "SyncReport")

log = logging.getLogger(__name__)

DesiredAdapters = Callable[[], Mapping[str, str | Path] | Awaitable[Mapping[str, str | Path]]]
"""Returns the wanted adapters, `{lora_name: path}`; may be sync or async."""


class SyncReport(msgspec.Struct, frozen=True):
    """The outcome of one pass; names are vLLM LoRA names."""

    loaded: tuple[str, ...] = ()
    unloaded: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    """Wanted and already loaded from the wanted path."""
    skipped: tuple[str, ...] = ()
    """Wanted but beyond `max_loras`."""
    failed: dict[str, str] = msgspec.field(default_factory=dict)
    """Name -> reason, for loads and unloads that did not succeed."""

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.unloaded)


class AdapterSync:
    def __init__(
        self,
        client: VllmClient,
        max_loras: int,
        *,
        trigger: asyncio.Event | None = None,
    ) -> None:
        if max_loras < 1:
            raise ValueError("max_loras must be at least 1")
        self.client = client
        self.max_loras = max_loras
        self.trigger = trigger or asyncio.Event()
        """Set it (e.g. on a registry change) to make `run_forever` sync now."""
        self.last_report: SyncReport | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    async def sync(self, desired: Mapping[str, str | Path]) -> SyncReport:
        """One pass; raises VllmUnavailableError/UpstreamTimeoutError if vLLM cannot be listed."""
        async with self._lock:
            report = await self._sync(desired)
        self.last_report = report
        self.last_error = None
        return report

    async def _sync(self, desired: Mapping[str, str | Path]) -> SyncReport:
        models = await self.client.list_models()
        failed: dict[str, str] = {}
        wanted: dict[str, str] = {}
        for name in sorted(desired):
            if name in models.base_ids:
                failed[name] = "the name of a base model cannot name an adapter"
            else:
                wanted[name] = str(desired[name])
        chosen = dict(list(wanted.items())[: self.max_loras])
        skipped = tuple(name for name in wanted if name not in chosen)

        stale = sorted(
            name
            for name, root in models.loras.items()
            if name not in chosen or (root and root != chosen[name])
        )
        unloaded = []
        for name in stale:
            try:
                await self.client.unload_adapter(name)
                unloaded.append(name)
            except TriviumError as exc:
                failed[name] = f"unload: {exc.message}"

        kept = tuple(name for name in chosen if name in models.loras and name not in unloaded)
        loaded = []
        for name, path in chosen.items():
            if name in kept or name in failed:
                continue
            try:
                await self.client.load_adapter(name, path)
                loaded.append(name)
            except TriviumError as exc:
                failed[name] = f"load: {exc.message}"
        report = SyncReport(tuple(loaded), tuple(unloaded), kept, skipped, failed)
        if report.changed or failed:
            log.info(
                "vLLM adapters synced",
                extra={
                    "loaded": list(loaded),
                    "unloaded": unloaded,
                    "skipped": list(skipped),
                    "failed": failed,
                },
            )
        return report

    async def run_forever(
        self,
        desired_fn: DesiredAdapters,
        interval_s: float,
        stop_event: asyncio.Event,
        *,
        retry_s: float = 1.0,
    ) -> None:
        """Sync now, then whenever `trigger` is set, every `interval_s`, and — after a failed
        pass — again after `retry_s` (doubling up to `interval_s`). Returns when `stop_event`
        is set; failures are logged, never raised."""
        backoff = retry_s
        while not stop_event.is_set():
            self.trigger.clear()
            try:
                wanted = desired_fn()
                desired = await wanted if inspect.isawaitable(wanted) else wanted
                report = await self.sync(desired)
            except Exception as exc:
                self.last_error = str(exc)
                log.warning("vLLM adapter sync failed; retrying", exc_info=True)
                report = None
            if report is not None and report.ok:
                delay, backoff = interval_s, retry_s
            else:
                if report is not None:
                    failed = report.failed
                    log.warning("some vLLM adapters failed to sync", extra={"failed": failed})
                delay, backoff = backoff, min(backoff * 2, interval_s)
            await self._wait(stop_event, delay)

    async def _wait(self, stop_event: asyncio.Event, delay_s: float) -> None:
        waiters = {
            asyncio.ensure_future(self.trigger.wait()),
            asyncio.ensure_future(stop_event.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for waiter in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
