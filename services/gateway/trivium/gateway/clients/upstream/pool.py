"""The gateway's upstream clients by name, kept in step with the routing policy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from trivium.common.aio import cancel_and_wait
from trivium.gateway.clients.upstream.client import UpstreamClient
from trivium.gateway.clients.upstream.metrics import UpstreamMetrics
from trivium.gateway.config import UpstreamClientSection
from trivium.gateway.policy.model import Upstream

__all__ = ("UpstreamPool",)


class UpstreamPool:
    """One `UpstreamClient` per configured upstream.

    `sync` on every policy load: an unchanged upstream keeps its client (pool and breaker);
    a new or changed one gets a new client; a replaced or removed client is closed
    `retire_after_s` later, so that requests still holding it can finish.
    """

    def __init__(self, options: UpstreamClientSection, *, retire_after_s: float = 30.0) -> None:
        self.options = options
        self.retire_after_s = retire_after_s
        self._clients: dict[str, UpstreamClient] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._unscheduled: list[UpstreamClient] = []
        """Retired while no event loop ran; closed by `aclose`."""

    def sync(self, upstreams: Mapping[str, Upstream]) -> None:
        current: dict[str, UpstreamClient] = {}
        retired: list[UpstreamClient] = []
        for name, upstream in upstreams.items():
            old = self._clients.get(name)
            if old is not None and old.upstream == upstream:
                current[name] = old
                continue
            if old is not None:
                retired.append(old)
            current[name] = UpstreamClient(name, upstream, self.options)
        retired.extend(client for name, client in self._clients.items() if name not in current)
        self._clients = current
        for client in retired:
            self._retire(client)

    def get(self, name: str) -> UpstreamClient:
        """The client for upstream `name`; KeyError when the policy has no such upstream."""
        return self._clients[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._clients)

    async def aclose(self) -> None:
        """Close every client now, retiring ones included."""
        for task in tuple(self._retiring):
            await cancel_and_wait(task)
        clients = [*self._clients.values(), *self._unscheduled]
        self._clients = {}
        self._unscheduled = []
        for client in clients:
            await client.aclose()

    def _retire(self, client: UpstreamClient) -> None:
        if client.name in self._clients:
            client.metrics.detach_gauges()  # its successor reports the circuit and the limit now
        else:
            UpstreamMetrics.forget(client.name)
            client.metrics.detach_gauges()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._unscheduled.append(client)
            return
        task = loop.create_task(self._close_later(client), name=f"retire-upstream-{client.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_later(self, client: UpstreamClient) -> None:
        try:
            await asyncio.sleep(self.retire_after_s)
        finally:
            await client.aclose()
