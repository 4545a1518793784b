"""Supervising the processes of `trivium up`: start them in order, restart any that dies
(with exponential backoff), and stop them in reverse order when told to.

A unit is anything with a process to launch, reap and check: a `trivium <service> serve`
child (`Child`) or the embedded Redis (`RedisUnit`). `start()` launches a unit and blocks
until it is ready (start-up; a failure there aborts `trivium up`). `run()` then watches every
unit until SIGINT/SIGTERM: a unit whose process exits is logged (one JSON line with `child`,
`exit_status`, `signal`, `restart`, `backoff_s`), waits its backoff, is launched again and
counts as up once its health check answers; backoff doubles with each failure in a row, up
to the cap, and starts over after `reset_after_s` of healthy running. A restart that does
not answer its health check within `start_timeout_s` is killed and counts as a failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

import httpx

from trivium.cli.supervisor_metrics import SupervisorMetrics
from trivium.common.errors import TriviumError
from trivium.common.redis_server import EmbeddedRedis

__all__ = ("Backoff", "Child", "RedisUnit", "Supervisor", "Unit")

log = logging.getLogger("trivium.supervisor")


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0
    """Healthy this long after a restart: the next failure waits `initial_s` again."""

    def delay(self, failures_in_a_row: int) -> float:
        """The wait before restart number `failures_in_a_row` of this streak (1, 2, ...)."""
        return float(min(self.initial_s * 2 ** max(failures_in_a_row - 1, 0), self.max_s))


class Unit(Protocol):
    name: str

    @property
    def pid(self) -> int | None: ...

    def launch(self, env: Mapping[str, str]) -> None:
        """Start the process (does not wait for it to answer)."""

    def reap_exit(self) -> int | None:
        """The exit status once the process has exited (reaped); None while it runs."""

    def healthy(self) -> bool:
        """Alive and answering (liveness): a restart counts as up from here."""

    def ready(self) -> bool:
        """Ready to serve (readiness): start-up waits for this."""

    def stop(self, timeout_s: float) -> None:
        """Stop gracefully; kill what does not stop within `timeout_s`."""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Child:
    """A `trivium <args>` child process with HTTP liveness and readiness endpoints."""

    name: str
    args: list[str]
    health_url: str
    ready_url: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def launch(self, env: Mapping[str, str]) -> None:
        command = [sys.executable, "-m", "trivium.cli.main", *self.args]
        self.process = subprocess.Popen(command, env=dict(env))  # noqa: S603 - our own CLI

    def reap_exit(self) -> int | None:
        if self.process is None:
            return None
        status = self.process.poll()
        if status is not None:
            self.process = None
        return status

    def healthy(self) -> bool:
        return self.process is not None and _answers(self.health_url)

    def ready(self) -> bool:
        return self.process is not None and _answers(self.ready_url)

    def stop(self, timeout_s: float) -> None:
        """SIGTERM (it drains in-flight requests), SIGKILL after `timeout_s`."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.process = None


class RedisUnit:
    """The embedded Redis as a supervised unit: restarted from its append-only file on the
    same socket, so clients reconnect to the same URL."""

    name = "redis"

    def __init__(self, embedded: EmbeddedRedis) -> None:
        self.embedded = embedded

    @property
    def pid(self) -> int | None:
        return self.embedded.pid

    def launch(self, env: Mapping[str, str]) -> None:
        try:
            started = self.embedded.start()
        except TriviumError as exc:
            raise RuntimeError(exc.message) from exc
        if not started:
            log.warning(
                "redis: another process runs the server on this data directory; "
                "it is not supervised until it exits",
                extra={"child": self.name, "url": self.embedded.url},
            )

    def reap_exit(self) -> int | None:
        return self.embedded.reap_exit()

    def healthy(self) -> bool:
        return self.embedded.running()

    def ready(self) -> bool:
        return self.embedded.running()

    def stop(self, timeout_s: float) -> None:
        self.embedded.stop()


def _describe(status: int) -> dict[str, object]:
    fields: dict[str, object] = {"exit_status": status}
    if status < 0:
        with contextlib.suppress(ValueError):
            fields["signal"] = signal.Signals(-status).name
    return fields


@dataclass
class _Watch:
    unit: Unit
    state: Literal["up", "backoff", "starting"] = "up"
    since: float = field(default_factory=time.monotonic)
    """When the current state began."""
    failures_in_a_row: int = 0
    restarts: int = 0
    next_start: float = 0.0
    deadline: float = 0.0


class Supervisor:
    def __init__(
        self,
        config_file: Path | None,
        *,
        backoff: Backoff | None = None,
        start_timeout_s: float = 300.0,
        metrics: SupervisorMetrics | None = None,
        poll_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.start_timeout_s = start_timeout_s
        self.metrics = metrics or SupervisorMetrics()
        self.poll_s = poll_s
        self._clock = clock
        self._env = dict(os.environ)
        if config_file is not None:
            self._env["TRIVIUM_CONFIG"] = str(config_file.resolve())
        self._watches: list[_Watch] = []
        self._stop = False

    @property
    def units(self) -> list[Unit]:
        return [watch.unit for watch in self._watches]

    def set_env(self, name: str, value: str) -> None:
        """Set a variable for the children launched from now on (restarts included)."""
        self._env[name] = value

    def start(self, unit: Unit) -> None:
        """Launch `unit` and wait until it is ready; it is supervised from then on."""
        self.metrics.track(unit.name)
        unit.launch(self._env)
        self._watches.append(_Watch(unit))
        deadline = self._clock() + self.start_timeout_s
        while self._clock() < deadline:
            status = unit.reap_exit()
            if status is not None:
                raise RuntimeError(f"{unit.name} exited at start-up (status {status})")
            if unit.ready():
                self.metrics.up.labels(service=unit.name).set(1)
                return
            time.sleep(self.poll_s)
        raise RuntimeError(f"{unit.name} did not become ready in {self.start_timeout_s:.0f}s")

    def run(self) -> int:
        """Supervise until SIGINT/SIGTERM (then 0); children that exit are restarted."""
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            while not self._stop:
                self.check()
                time.sleep(self.poll_s)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def request_stop(self) -> None:
        self._stop = True

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def check(self) -> None:
        """One supervision step over every unit (what `run()` repeats)."""
        for watch in self._watches:
            if self._stop:
                return
            if watch.state == "up":
                self._check_up(watch)
            elif watch.state == "backoff":
                self._check_backoff(watch)
            else:
                self._check_starting(watch)

    def _check_up(self, watch: _Watch) -> None:
        now = self._clock()
        if watch.failures_in_a_row and now - watch.since >= self.backoff.reset_after_s:
            watch.failures_in_a_row = 0
        pid = watch.unit.pid
        status = watch.unit.reap_exit()
        if status is not None and not self._stop:
            self._failed(watch, "exited unexpectedly", {**_describe(status), "pid": pid})

    def _check_backoff(self, watch: _Watch) -> None:
        if self._clock() < watch.next_start:
            return
        unit = watch.unit
        watch.restarts += 1
        self.metrics.restarts.labels(service=unit.name).inc()
        self.metrics.backoff.labels(service=unit.name).set(0)
        try:
            unit.launch(self._env)
        except (OSError, RuntimeError) as exc:
            self._failed(watch, "could not be restarted", {"error": str(exc)})
            return
        log.info(
            f"{unit.name} restarted",
            extra={"child": unit.name, "restart": watch.restarts, "pid": unit.pid},
        )
        watch.state = "starting"
        watch.since = self._clock()
        watch.deadline = watch.since + self.start_timeout_s

    def _check_starting(self, watch: _Watch) -> None:
        unit = watch.unit
        status = unit.reap_exit()
        if status is not None:
            self._failed(watch, "exited while restarting", _describe(status))
        elif unit.healthy():
            took = self._clock() - watch.since
            watch.state = "up"
            watch.since = self._clock()
            self.metrics.up.labels(service=unit.name).set(1)
            log.info(
                f"{unit.name} is up again",
                extra={"child": unit.name, "restart": watch.restarts, "took_s": round(took, 2)},
            )
        elif self._clock() > watch.deadline:
            unit.stop(timeout_s=5.0)
            self._failed(
                watch,
                f"did not answer its health check within {self.start_timeout_s:.0f}s",
                {},
            )

    def _failed(self, watch: _Watch, what: str, fields: dict[str, object]) -> None:
        name = watch.unit.name
        watch.failures_in_a_row += 1
        delay = self.backoff.delay(watch.failures_in_a_row)
        watch.state = "backoff"
        watch.since = self._clock()
        watch.next_start = watch.since + delay
        self.metrics.up.labels(service=name).set(0)
        self.metrics.backoff.labels(service=name).set(delay)
        log.warning(
            f"{name} {what}; restarting in {delay:g}s",
            extra={
                "child": name,
                **fields,
                "restart": watch.restarts + 1,
                "failures_in_a_row": watch.failures_in_a_row,
                "backoff_s": delay,
            },
        )

    def stop_all(self, timeout_s: float = 30.0) -> None:
        """Stop every unit, newest first, each before the next (the gateway drains while the
        services behind it still answer; Redis goes last)."""
        self._stop = True
        for watch in reversed(self._watches):
            watch.unit.stop(timeout_s)
            self.metrics.up.labels(service=watch.unit.name).set(0)
