"""The rollout controller: every replica reads the rollouts' state each tick (the weights its
requests are assigned by); the one holding the lease drives them.

Driving one rollout, each tick: a new block (no state, or a state of another hash) starts
at its first step; a running or paused one has its guards judged over the step's window (the
stats window's per-variant numbers since the step started, at most the window): a failed
guard rolls it back at once (weight 0; with `rollback_registry`, its template or adapter
label too); a running one whose step has lasted `min_duration_s`, seen `min_requests` canary
requests and passed its guards advances; entering the last step completes it. A state whose
block left the policy is deleted ("ended"). Every write is fenced by the lease (`state.py`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from trivium.common.aio import Periodic
from trivium.common.errors import ConflictError, NotFoundError, TriviumError, UnavailableError
from trivium.common.logs import LogThrottle
from trivium.gateway.policy.holder import PolicyHolder
from trivium.gateway.policy.model import Feature, Variant
from trivium.gateway.rollouts.guards import Judgement, judge
from trivium.gateway.rollouts.lease import Lease
from trivium.gateway.rollouts.metrics import EVENTS, LEADER, STEP
from trivium.gateway.rollouts.plan import (
    EffectiveWeights,
    RolloutSpec,
    effective_percent,
    effective_weights,
    feature_rollout,
    rollout_specs,
    weighted_variants,
)
from trivium.gateway.rollouts.schemas import LeaseView, RolloutList, RolloutView
from trivium.gateway.rollouts.state import (
    TERMINAL,
    Outcome,
    RolloutEvent,
    RolloutState,
    RolloutStore,
    advance,
)
from trivium.gateway.telemetry.stats import StatsRecorder
from trivium.registry import Registry

__all__ = (
    "RolloutController",
    "RolloutNotFoundError",
    "RolloutStateError",
    "RolloutsUnavailableError",
)

log = logging.getLogger(__name__)

Key = tuple[str, str]
Action = str  # pause, resume, abort


class RolloutNotFoundError(NotFoundError):
    code = "rollout_not_found"


class RolloutStateError(ConflictError):
    code = "rollout_state"


class RolloutsUnavailableError(UnavailableError):
    code = "rollouts_unavailable"
    title = "Rollouts unavailable"


_REDIS_ERRORS = (redis_errors.RedisError, OSError)


class RolloutController:
    def __init__(
        self,
        *,
        store: RolloutStore,
        lease: Lease,
        policies: PolicyHolder,
        stats: StatsRecorder,
        tick_s: float,
        registries: Mapping[str, Registry] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lease = lease
        self.policies = policies
        self.stats = stats
        self.registries = registries or {}
        """"template" and "adapter": for `rollback_registry`."""
        self.clock = clock
        self.replica = lease.owner
        self._states: dict[Key, RolloutState | None] = {}
        self._overlay: dict[str, tuple[Feature, Mapping[str, Variant]]] = {}
        self._loop = Periodic("rollouts", tick_s, self.tick, log)
        self._throttle = LogThrottle(log, 30.0)
        self._gauged: set[Key] = set()
        self.on_completed: Callable[[str], Awaitable[object]] | None = None
        """Called with the feature when this replica completes a rollout (a promotion)."""

    # -- every replica ----------------------------------------------------------------------

    def variants_for(self, name: str, feature: Feature) -> Mapping[str, Variant]:
        """The variants with the weights requests are assigned by (no I/O: the last state
        this replica read); the file's when the feature has no rollout."""
        entry = self._overlay.get(name)
        if entry is not None and entry[0] is feature:
            return entry[1]
        variants: Mapping[str, Variant] = feature.variants
        spec = feature_rollout(name, feature)
        if spec is not None:
            percent = effective_percent(spec, self._states.get((name, spec.variant)))
            variants = weighted_variants(feature, spec.variant, percent)
        self._overlay[name] = (feature, variants)
        return variants

    def effective(self) -> dict[str, EffectiveWeights]:
        """Each feature with variants: its variants' shares now, and why."""
        policy = self.policies.current.policy
        specs = rollout_specs(policy)
        by_feature = {f: specs[(f, v)] for f, v in specs}
        return {
            name: effective_weights(
                name,
                feature,
                by_feature.get(name),
                self._states.get((name, by_feature[name].variant)) if name in by_feature else None,
            )
            for name, feature in policy.features.items()
            if feature.variants
        }

    async def tick(self) -> None:
        specs = rollout_specs(self.policies.current.policy)
        try:
            states = await self.store.read_many(list(specs))
            self._remember(states)
            ended = await self.store.indexed() - specs.keys()
            # Nothing to drive and nothing to end: no lease is taken (no Redis write per tick).
            leading = bool(specs or ended) and await self.lease.hold()
            LEADER.set(1 if leading else 0)
            if leading:
                for key, spec in specs.items():
                    await self._drive(spec, states.get(key))
                for key in ended:
                    await self._end(key)
        except _REDIS_ERRORS as exc:
            self._throttle.warning("tick", "rollout state unreadable", extra={"error": repr(exc)})
            return
        self._throttle.reset("tick")
        self._gauge(specs)

    def _remember(self, states: Mapping[Key, RolloutState | None]) -> None:
        if dict(states) != self._states:
            self._states = dict(states)
            self._overlay = {}

    def _gauge(self, specs: Mapping[Key, RolloutSpec]) -> None:
        for key, spec in specs.items():
            STEP.labels(*key).set(effective_percent(spec, self._states.get(key)))
        for key in self._gauged - specs.keys():
            STEP.labels(*key).set(0)
        self._gauged = set(specs)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        with contextlib.suppress(*_REDIS_ERRORS):
            await self.lease.release()
        LEADER.set(0)

    # -- the leader -------------------------------------------------------------------------

    async def _drive(self, spec: RolloutSpec, state: RolloutState | None) -> None:
        now = self.clock()
        steps = spec.rollout.steps
        if state is None or state.id != spec.id:
            last = len(steps) == 1
            outcome: Outcome = "started" if state is None else "restarted"
            fresh = RolloutState(
                id=spec.id,
                feature=spec.feature,
                variant=spec.variant,
                status="completed" if last else "running",
                step=0,
                percent=steps[0],
                started_at=now,
                step_started_at=now,
                rev=-1 if state is None else state.rev,
            )
            reason = (
                "a new rollout block" if state is None else f"its block changed (was {state.id})"
            )
            event = self._event(fresh, outcome, now, reason, step=1, percent=steps[0])
            await self._write(spec, state, advance(fresh, event, self.lease.token), event)
            return
        if state.status in TERMINAL:
            return
        window = await self.stats.variant_window(spec.feature, state.step_started_at)
        judgement = judge(spec.rollout, window.get(spec.variant), window.get(spec.rollout.control))
        if judgement.verdict == "fail":
            await self._roll_back(spec, state, judgement, now)
            return
        if (
            state.status == "running"
            and judgement.verdict == "pass"
            and judgement.canary_requests >= spec.rollout.min_requests
            and now - state.step_started_at >= spec.rollout.min_duration_s
        ):
            step = state.step + 1
            done = step == len(steps) - 1
            event = self._event(
                state,
                "completed" if done else "advanced",
                now,
                f"step {state.step + 1} held for {now - state.step_started_at:.1f} s and "
                f"{judgement.canary_requests} requests: {judgement.reason()}",
                step=step + 1,
                percent=steps[step],
                judgement=judgement,
            )
            new = advance(
                state,
                event,
                self.lease.token,
                step=step,
                percent=steps[step],
                step_started_at=now,
                status="completed" if done else "running",
            )
            if await self._write(spec, state, new, event) and done and self.on_completed:
                await self.on_completed(spec.feature)

    async def _roll_back(
        self, spec: RolloutSpec, state: RolloutState, judgement: Judgement, now: float
    ) -> None:
        event = self._event(
            state,
            "rolled_back",
            now,
            judgement.reason(),
            step=state.step + 1,
            percent=0.0,
            judgement=judgement,
        )
        new = advance(state, event, self.lease.token, status="rolled_back", percent=0.0)
        if await self._write(spec, state, new, event) and spec.rollout.rollback_registry:
            await self._roll_back_registry(spec, new)

    async def _roll_back_registry(self, spec: RolloutSpec, state: RolloutState) -> None:
        """Only after the fenced write succeeded: a stale leader never gets here."""
        variant = self.policies.current.policy.features[spec.feature].variants[spec.variant]
        for kind, ref in (("template", variant.template), ("adapter", variant.adapter)):
            registry = self.registries.get(kind)
            if ref is None or registry is None or "@" not in ref:
                continue
            name, _, label = ref.rpartition("@")
            if label.isdigit():
                continue
            try:
                move = await registry.rollback(name, label, actor=f"rollout:{self.replica}")
                reason = f"{kind} {name}@{label}: version {move.from_version} -> {move.to_version}"
            except (TriviumError, *_REDIS_ERRORS) as exc:
                reason = f"{kind} {name}@{label} not rolled back: {exc}"
            log.warning(
                "rollout registry rollback",
                extra={"feature": spec.feature, "variant": spec.variant, "result": reason},
            )
            with contextlib.suppress(*_REDIS_ERRORS):
                await self.store.audit(self._event(state, "rolled_back", self.clock(), reason))

    async def _end(self, key: Key) -> None:
        """A state whose block is no longer in the policy: the rollout ended; delete it."""
        state = await self.store.read(*key)
        if state is None:
            return
        event = self._event(
            state, "ended", self.clock(), "its block left the policy file", percent=0.0
        )
        result = await self.store.write(
            *key, state.rev, None, event, lease_value=self.lease.value, token=self.lease.token
        )
        if result == "ok":
            self._count(event)

    def _event(
        self,
        state: RolloutState,
        outcome: Outcome,
        now: float,
        reason: str,
        *,
        step: int | None = None,
        percent: float | None = None,
        judgement: Judgement | None = None,
        actor: str | None = None,
    ) -> RolloutEvent:
        return RolloutEvent(
            at=now,
            outcome=outcome,
            step=state.step + 1 if step is None else step,
            percent=state.percent if percent is None else percent,
            reason=reason,
            actor=actor or self.replica,
            token=0 if actor else self.lease.token,
            feature=state.feature,
            variant=state.variant,
            canary_requests=judgement.canary_requests if judgement else 0,
            control_requests=judgement.control_requests if judgement else 0,
            readings=judgement.readings if judgement else (),
        )

    async def _write(
        self,
        spec: RolloutSpec,
        previous: RolloutState | None,
        new: RolloutState,
        event: RolloutEvent,
    ) -> bool:
        expected = -1 if previous is None else previous.rev
        result = await self.store.write(
            spec.feature,
            spec.variant,
            expected,
            new,
            event,
            lease_value=self.lease.value,
            token=self.lease.token,
        )
        if result != "ok":
            log.info(
                "rollout write refused",
                extra={"feature": spec.feature, "variant": spec.variant, "result": result},
            )
            return False
        self._states[(spec.feature, spec.variant)] = new
        self._overlay.pop(spec.feature, None)
        self._count(event)
        return True

    def _count(self, event: RolloutEvent) -> None:
        EVENTS.labels(event.outcome).inc()
        level = logging.WARNING if event.outcome == "rolled_back" else logging.INFO
        log.log(
            level,
            f"rollout {event.outcome}",
            extra={
                "feature": event.feature,
                "variant": event.variant,
                "step": event.step,
                "percent": event.percent,
                "reason": event.reason,
                "actor": event.actor,
                "token": event.token,
                "canary_requests": event.canary_requests,
                "control_requests": event.control_requests,
                "readings": [msgspec.to_builtins(r) for r in event.readings],
            },
        )

    # -- the routes -------------------------------------------------------------------------

    def _spec(self, feature: str, variant: str) -> RolloutSpec:
        spec = rollout_specs(self.policies.current.policy).get((feature, variant))
        if spec is None:
            raise RolloutNotFoundError(
                f"the active policy has no rollout on {feature}/{variant}",
                field="variant" if feature in self.policies.current.policy.features else "feature",
            )
        return spec

    def _view(self, spec: RolloutSpec, state: RolloutState | None) -> RolloutView:
        feature = self.policies.current.policy.features[spec.feature]
        current = state if state is not None and state.id == spec.id else None
        return RolloutView(
            feature=spec.feature,
            variant=spec.variant,
            id=spec.id,
            control=spec.rollout.control,
            status="pending" if current is None else current.status,
            steps=spec.rollout.steps,
            step=0 if current is None else current.step + 1,
            percent=effective_percent(spec, current),
            started_at=None if current is None else current.started_at,
            step_started_at=None if current is None else current.step_started_at,
            effective_weights=effective_weights(spec.feature, feature, spec, current),
            history=() if current is None else current.history,
        )

    async def list(self) -> RolloutList:
        specs = rollout_specs(self.policies.current.policy)
        try:
            states = await self.store.read_many(list(specs))
            holder = await self.lease.holder()
        except _REDIS_ERRORS as exc:
            raise _unavailable() from exc
        return RolloutList(
            replica=self.replica,
            lease=None if holder is None else LeaseView(holder=holder[0], token=holder[1]),
            rollouts=[self._view(spec, states.get(key)) for key, spec in specs.items()],
        )

    async def show(self, feature: str, variant: str) -> RolloutView:
        spec = self._spec(feature, variant)
        try:
            state = await self.store.read(feature, variant)
        except _REDIS_ERRORS as exc:
            raise _unavailable() from exc
        return self._view(spec, state)

    async def act(self, feature: str, variant: str, action: Action, actor: str) -> RolloutView:
        """pause (hold the step; guards still roll back), resume, abort (weight 0)."""
        spec = self._spec(feature, variant)
        for _ in range(5):
            try:
                state = await self.store.read(feature, variant)
            except _REDIS_ERRORS as exc:
                raise _unavailable() from exc
            if state is None or state.id != spec.id:
                raise RolloutStateError(
                    "the controller has not started this rollout yet; retry in a moment",
                    field="variant",
                )
            new = self._acted(state, action, actor)
            if new is None:  # already so: nothing to write
                return self._view(spec, state)
            event = new.history[-1]
            try:
                result = await self.store.write(feature, variant, state.rev, new, event)
            except _REDIS_ERRORS as exc:
                raise _unavailable() from exc
            if result == "ok":
                self._states[(feature, variant)] = new
                self._overlay.pop(feature, None)
                self._count(event)
                return self._view(spec, new)
        raise RolloutStateError("the rollout kept changing; retry", field="variant")

    def _acted(self, state: RolloutState, action: Action, actor: str) -> RolloutState | None:
        wanted = {"pause": "paused", "resume": "running", "abort": "aborted"}[action]
        if state.status == wanted:
            return None
        if state.status in TERMINAL:
            raise RolloutStateError(
                f"the rollout is {state.status}; edit its block in the policy file to start "
                "a new one",
                field="variant",
            )
        outcome: Outcome = {"pause": "paused", "resume": "resumed", "abort": "aborted"}[action]  # type: ignore[assignment]
        now = self.clock()
        event = self._event(
            state,
            outcome,
            now,
            f"{action} by {actor}",
            percent=0.0 if action == "abort" else None,
            actor=actor,
        )
        changes: dict[str, Any] = {"status": wanted}
        if action == "abort":
            changes["percent"] = 0.0
        return advance(state, event, **changes)


def _unavailable() -> RolloutsUnavailableError:
    return RolloutsUnavailableError(
        "rollout state is kept in Redis, which does not answer; retry shortly",
        retry_after_s=2,
        extra={"dependency": "redis"},
    )
