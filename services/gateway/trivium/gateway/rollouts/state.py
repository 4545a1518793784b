"""A rollout's state in Redis, and the one script every write goes through.

Layout (`<p>` is the registry key prefix):

    <p>:rollout:state:<feature>:<variant>   JSON `RolloutState` (status, step, times, history)
    <p>:rollout:index                       set of "<feature>|<variant>" with a state
    <p>:rollout:audit                       stream, one `RolloutEvent` a field (about 10,000 kept)
    <p>:rollout:lease, <p>:rollout:fence    the driving replica's lease (`lease.py`)

Every write is one Lua script: a compare-and-set on the state's `rev`, and for the
controller's writes also on the lease (its value must still be this replica's, with its
fencing token, and the state must not carry a higher token), so a replica that lost the
lease while paused or partitioned cannot write; the audit entry is appended in the same
script.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec
from redis.asyncio import Redis

__all__ = (
    "MAX_HISTORY",
    "OUTCOMES",
    "GuardReading",
    "Outcome",
    "RolloutEvent",
    "RolloutState",
    "RolloutStore",
    "Status",
    "WriteResult",
    "advance",
)

Status = Literal["running", "paused", "aborted", "rolled_back", "completed"]
TERMINAL: frozenset[Status] = frozenset({"aborted", "rolled_back", "completed"})
Outcome = Literal[
    "started",
    "restarted",
    "advanced",
    "completed",
    "rolled_back",
    "paused",
    "resumed",
    "aborted",
    "ended",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
WriteResult = Literal["ok", "fenced", "conflict"]
MAX_HISTORY = 100
"""Events kept in the state; the audit stream keeps them all (about 10,000)."""


class GuardReading(msgspec.Struct, frozen=True):
    """One guard over a step's window: the canary's and the control's value, the compared
    value (a difference or a ratio), its limit, and whether it held (None: no data)."""

    guard: str
    canary: float | None
    control: float | None
    value: float | None
    limit: float
    passed: bool | None


class RolloutEvent(msgspec.Struct, frozen=True):
    at: float
    outcome: Outcome
    step: int
    """1-based step the rollout is at after the event (0: none)."""
    percent: float
    reason: str
    actor: str
    """The controller's replica id, or the caller of pause/resume/abort."""
    token: int = 0
    """The lease's fencing token the controller wrote with (0: an operator's action)."""
    feature: str = ""
    variant: str = ""
    canary_requests: int = 0
    control_requests: int = 0
    readings: tuple[GuardReading, ...] = ()


class RolloutState(msgspec.Struct, frozen=True):
    id: str
    """The rollout's hash (its variant, block included): an edited block is a new rollout."""
    feature: str
    variant: str
    status: Status
    step: int
    """0-based index into the rollout's steps."""
    percent: float
    started_at: float
    step_started_at: float
    rev: int = 0
    """Bumped by every write (the compare-and-set)."""
    fence: int = 0
    """The highest fencing token that wrote this state."""
    history: tuple[RolloutEvent, ...] = ()


def advance(
    state: RolloutState, event: RolloutEvent, token: int = 0, **changes: object
) -> RolloutState:
    """The state after `event`: `changes` applied, rev bumped, the event appended (bounded)."""
    history = (*state.history, event)[-MAX_HISTORY:]
    return msgspec.structs.replace(
        state,
        rev=state.rev + 1,
        fence=max(state.fence, token),
        history=history,
        **changes,
    )


_WRITE = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'fenced' end
local current = redis.call('GET', KEYS[2])
local rev = -1
if current then
  local state = cjson.decode(current)
  rev = state['rev']
  if ARGV[1] ~= '' and tonumber(ARGV[5]) < state['fence'] then return 'fenced' end
end
if rev ~= tonumber(ARGV[2]) then return 'conflict' end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[4], ARGV[6])
else
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[6])
end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', '10000', '*', 'event', ARGV[4])
end
return 'ok'
"""

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(RolloutState).decode
_decode_event = msgspec.json.Decoder(RolloutEvent).decode


class RolloutStore:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.index_key = f"{prefix}:rollout:index"
        self.audit_key = f"{prefix}:rollout:audit"
        self.lease_key = f"{prefix}:rollout:lease"
        self.fence_key = f"{prefix}:rollout:fence"
        self._write = client.register_script(_WRITE)

    def state_key(self, feature: str, variant: str) -> str:
        return f"{self.prefix}:rollout:state:{feature}:{variant}"

    async def read(self, feature: str, variant: str) -> RolloutState | None:
        raw = await self.client.get(self.state_key(feature, variant))
        return None if raw is None else _decode_state(raw)

    async def read_many(
        self, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], RolloutState | None]:
        if not pairs:
            return {}
        raws = await self.client.mget([self.state_key(f, v) for f, v in pairs])
        return {
            pair: None if raw is None else _decode_state(raw)
            for pair, raw in zip(pairs, raws, strict=True)
        }

    async def indexed(self) -> set[tuple[str, str]]:
        """Every (feature, variant) with a stored state."""
        members = await self.client.smembers(self.index_key)
        pairs = (m.decode() if isinstance(m, bytes) else str(m) for m in members)
        return {(f, v) for f, _, v in (p.partition("|") for p in pairs)}

    async def write(
        self,
        feature: str,
        variant: str,
        expected_rev: int,
        new: RolloutState | None,
        event: RolloutEvent | None,
        *,
        lease_value: str = "",
        token: int = 0,
    ) -> WriteResult:
        """Set (or with `new` None, delete) the state if its rev is `expected_rev` (-1: absent)
        and, with `lease_value`, if the lease is still that value; append `event` to the audit.
        """
        result = await self._write(
            keys=[self.lease_key, self.state_key(feature, variant), self.audit_key, self.index_key],
            args=[
                lease_value,
                str(expected_rev),
                b"" if new is None else _encode(new),
                b"" if event is None else _encode(event),
                str(token),
                f"{feature}|{variant}",
            ],
        )
        text = result.decode() if isinstance(result, bytes) else str(result)
        assert text in ("ok", "fenced", "conflict"), text
        return text  # type: ignore[return-value]

    async def audit(self, event: RolloutEvent) -> None:
        """Append an event that changes no state (e.g. the registry's rollback after one)."""
        await self.client.xadd(self.audit_key, {"event": _encode(event)}, maxlen=10_000)

    async def audit_log(self, count: int = 100) -> list[RolloutEvent]:
        """The latest `count` audit events, oldest first."""
        entries = await self.client.xrevrange(self.audit_key, count=count) or []
        return [_decode_event(fields[b"event"]) for _, fields in reversed(entries) if fields]
