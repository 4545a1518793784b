"""Which adapters the engine holds: loaded on demand, kept in step with the registry's labels.

Model names in requests: the base model's served name, or an adapter reference (`name` =
its production label, `name@label`, `name@3`). Inside the engine an adapter version is
`name@version`. A reconcile pass (on start, on every registry change from any process, and
periodically) loads every labelled version and unloads versions no label points at that
have been idle for a while, so replicas converge on the registry without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from trivium.common.errors import TriviumError
from trivium.model.engines.base import AdapterHost
from trivium.model.errors import ModelNotFoundError
from trivium.registry import Registry
from trivium.registry.errors import (
    MalformedReferenceError,
    UnknownArtifactError,
    UnknownLabelError,
    UnknownVersionError,
)

__all__ = ("AdapterManager",)

log = logging.getLogger(__name__)


class AdapterManager:
    def __init__(
        self, registry: Registry, engine: AdapterHost, base_name: str, idle_unload_s: float = 300.0
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.base_name = base_name
        self.idle_unload_s = idle_unload_s
        self.changed = asyncio.Event()
        self._last_used: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._labels: dict[str, dict[str, int]] = {}
        registry.on_change(lambda _name: self.changed.set())

    async def resolve(self, model: str) -> str | None:
        """The engine adapter id serving `model` (None: the base), loading it if needed."""
        if model == self.base_name:
            return None
        try:
            artifact = await self.registry.resolve(model)
        except (UnknownArtifactError, UnknownLabelError, UnknownVersionError) as exc:
            raise ModelNotFoundError(
                f"the model {model!r} does not exist: {exc.message}", field="model"
            ) from exc
        except MalformedReferenceError as exc:
            raise ModelNotFoundError(
                f"the model {model!r} does not exist: {exc.message}", field="model"
            ) from exc
        adapter_id = f"{artifact.name}@{artifact.version}"
        self._last_used[adapter_id] = time.monotonic()
        if adapter_id not in self.engine.loaded_adapters():
            await self._load(adapter_id, Path(artifact.body))
        return adapter_id

    async def _load(self, adapter_id: str, path: Path) -> None:
        lock = self._locks.setdefault(adapter_id, asyncio.Lock())
        async with lock:
            if adapter_id not in self.engine.loaded_adapters():
                await self.engine.load_adapter(adapter_id, path)

    async def unload(self, adapter_id: str) -> None:
        await self.engine.unload_adapter(adapter_id)
        self._last_used.pop(adapter_id, None)

    def aliases(self) -> dict[str, str]:
        """`name@label` and `name` (production) for each labelled version, to its adapter id."""
        aliases = {}
        for name, labels in self._labels.items():
            for label, version in labels.items():
                aliases[f"{name}@{label}"] = f"{name}@{version}"
                if label == "production":
                    aliases[name] = f"{name}@{version}"
        return aliases

    async def reconcile(self) -> None:
        """Hold every labelled version, plus unlabelled ones used in the last `idle_unload_s`."""
        summaries = await self.registry.list()
        self._labels = {s.name: dict(s.labels) for s in summaries}
        now = time.monotonic()
        wanted = {f"{s.name}@{v}" for s in summaries for v in s.labels.values()}
        wanted |= {a for a, used in self._last_used.items() if now - used <= self.idle_unload_s}
        paths: dict[str, Path] = {}
        for adapter_id in sorted(wanted):
            try:
                paths[adapter_id] = Path((await self.registry.resolve(adapter_id)).body)
            except TriviumError:
                log.exception("cannot resolve adapter", extra={"adapter": adapter_id})
        await self.engine.sync_adapters(paths)
        for adapter_id in set(self._last_used) - self.engine.loaded_adapters():
            self._last_used.pop(adapter_id, None)

    async def run_forever(self, interval_s: float = 30.0) -> None:
        """Reconcile on every registry change and every `interval_s`; never gives up."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), interval_s)
            self.changed.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("adapter reconcile failed; retrying")
                await asyncio.sleep(1.0)
