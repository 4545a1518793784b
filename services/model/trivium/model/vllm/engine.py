"""vLLM as the model service's adapter host: its process, its client, its loaded LoRAs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from trivium.common.aio import cancel_and_wait
from trivium.model.config import ModelSettings
from trivium.model.errors import QueueFullError
from trivium.model.vllm.client import VllmClient
from trivium.model.vllm.process import ManagedVllm, vllm_base_url
from trivium.model.vllm.sync import AdapterSync

__all__ = ("VllmEngine",)

log = logging.getLogger(__name__)


class VllmEngine:
    """Starts (or attaches to) vLLM and loads/unloads its runtime LoRA adapters by id."""

    def __init__(self, settings: ModelSettings) -> None:
        section = settings.model.vllm
        self.served_name = settings.model.served_model_name
        self.max_loras = section.max_loras
        self.process = ManagedVllm(section, self.served_name, settings.data_dir / "vllm")
        self.client = VllmClient(
            vllm_base_url(section), request_timeout_s=section.request_timeout_s
        )
        self._sync = AdapterSync(self.client, section.max_loras)
        self._loaded: dict[str, str] = {}
        self._metrics_poll_s = section.metrics_poll_s
        self._poller: asyncio.Task[None] | None = None
        self.queue_depth = 0
        """Requests vLLM holds waiting for a batch slot, as of the last poll."""

    async def start(self) -> None:
        await self.process.start()
        await self.refresh()
        self._poller = asyncio.create_task(self._poll_queue(), name="vllm-metrics")

    async def close(self) -> None:
        await cancel_and_wait(self._poller)
        await self.client.aclose()
        await self.process.stop()

    async def _poll_queue(self) -> None:
        failing = False
        while True:
            try:
                self.queue_depth = await self.client.waiting_requests()
                failing = False
            except Exception as exc:  # a metrics hiccup must never stop serving
                if not failing:
                    log.warning("cannot read vLLM's queue depth", extra={"error": str(exc)})
                failing = True
            await asyncio.sleep(self._metrics_poll_s)

    async def refresh(self) -> None:
        """Re-read what vLLM holds (it forgets runtime adapters when it restarts)."""
        self._loaded = dict((await self.client.list_models()).loras)

    def loaded_adapters(self) -> frozenset[str]:
        return frozenset(self._loaded)

    async def load_adapter(self, adapter_id: str, path: Path) -> None:
        if adapter_id in self._loaded:
            return
        if len(self._loaded) >= self.max_loras:
            raise QueueFullError(
                f"vLLM holds {len(self._loaded)} adapters, its --max-loras is {self.max_loras}",
                retry_after_s=5,
            )
        await self.client.load_adapter(adapter_id, path)
        self._loaded[adapter_id] = str(path)

    async def unload_adapter(self, adapter_id: str) -> None:
        await self.client.unload_adapter(adapter_id)
        self._loaded.pop(adapter_id, None)

    async def sync_adapters(self, wanted: Mapping[str, Path]) -> None:
        report = await self._sync.sync(wanted)
        if not report.ok:
            log.warning("vLLM adapter sync incomplete", extra={"failed": report.failed})
        if report.skipped:
            log.warning("adapters beyond --max-loras", extra={"skipped": list(report.skipped)})
        await self.refresh()
