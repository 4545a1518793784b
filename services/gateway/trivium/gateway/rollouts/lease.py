"""The lease that lets exactly one replica drive rollouts, with a fencing token.

`<p>:rollout:lease` holds `<owner>|<token>` with a time to live; `<p>:rollout:fence` counts
up, one token per acquisition, so a later holder always has a larger token. `hold()` renews
the lease when its value is still ours, else takes it when it is free. A holder that stops
renewing (killed, paused, cut off) loses it after `ttl_s`; its token is then stale and every
state write, a Lua compare on the lease's value (`state.py`), refuses it.
"""

from __future__ import annotations

import os
import socket
import uuid

from redis.asyncio import Redis

__all__ = ("Lease", "LeaseHolder", "replica_id")

_HOLD = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, current}
  end
  return {0, current}
end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return {1, value}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def replica_id() -> str:
    """This process: host, pid and a random suffix (a restarted pid is another replica)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseHolder(tuple[str, int]):
    """(owner, token) parsed from a lease value."""

    @classmethod
    def parse(cls, value: str) -> LeaseHolder:
        owner, _, token = value.rpartition("|")
        return cls((owner, int(token) if token.isdigit() else 0))


class Lease:
    def __init__(self, client: Redis, key: str, fence_key: str, owner: str, ttl_s: float) -> None:
        self.client = client
        self.key = key
        self.fence_key = fence_key
        self.owner = owner
        self.ttl_ms = max(int(ttl_s * 1000), 1)
        self.value = ""
        """`<owner>|<token>` while held, else empty."""
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    @property
    def token(self) -> int:
        return LeaseHolder.parse(self.value)[1] if self.value else 0

    async def hold(self) -> bool:
        """Renew the lease if it is still ours, else take it if it is free."""
        held, value = await self._hold(
            keys=[self.key, self.fence_key], args=[self.owner, self.value, str(self.ttl_ms)]
        )
        text = value.decode() if isinstance(value, bytes) else str(value)
        self.value = text if int(held) == 1 else ""
        return bool(self.value)

    async def release(self) -> None:
        if self.value:
            await self._release(keys=[self.key], args=[self.value])
            self.value = ""

    async def holder(self) -> LeaseHolder | None:
        raw = await self.client.get(self.key)
        if raw is None:
            return None
        return LeaseHolder.parse(raw.decode() if isinstance(raw, bytes) else str(raw))
