"""The vLLM server the model service talks to: a child process it manages, or one it attaches to.

Managed (no `model.vllm.url`): the child runs in its own session (so that stopping it reaches
vLLM's engine-core and GPU worker processes too), with stdout and stderr in `log_dir/vllm.log`
(the previous run's log is kept as `vllm.log.1`). `start()` waits for `GET /health` to answer
200 within `startup_timeout_s`, failing early, with the log tail, if the child exits. `stop()`
sends SIGTERM to the process group and SIGKILL after `stop_grace_s`.

Attached (`model.vllm.url` set): `start()` only waits for `/health`; `stop()` does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from trivium.model.config import VllmSection
from trivium.model.vllm.client import VllmClient
from trivium.model.vllm.command import build_vllm_command, vllm_environment
from trivium.model.vllm.errors import VllmUnavailableError

__all__ = ("ManagedVllm", "vllm_base_url")

log = logging.getLogger(__name__)

_LOG_TAIL_BYTES = 16 * 1024


def vllm_base_url(section: VllmSection) -> str:
    """The URL the service reaches vLLM at: `url`, else the managed process's host and port."""
    if section.url:
        return section.url.rstrip("/")
    host = section.host
    if host in ("", "0.0.0.0"):  # noqa: S104 - a bind-all address, reached via loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{section.port}"


class ManagedVllm:
    """Start (or attach to) vLLM and wait until it is healthy; stop what was started."""

    def __init__(
        self,
        section: VllmSection,
        served_model_name: str,
        log_dir: Path,
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        stop_grace_s: float = 20.0,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.section = section
        self.served_model_name = served_model_name
        self.log_dir = log_dir
        self.base_url = vllm_base_url(section)
        self.stop_grace_s = stop_grace_s
        self.poll_interval_s = poll_interval_s
        self._command = list(command) if command is not None else None
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def attached(self) -> bool:
        return bool(self.section.url)

    @property
    def log_path(self) -> Path:
        return self.log_dir / "vllm.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited (negative: killed by that signal)."""
        return self._process.poll() if self._process is not None else None

    def running(self) -> bool:
        """Attached: always True (health tells the rest). Managed: the child has not exited."""
        if self.attached:
            return True
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        if self._command is not None:
            return list(self._command)
        return build_vllm_command(self.section, self.served_model_name)

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines of the child's log ('' when there is none)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - _LOG_TAIL_BYTES))
                data = handle.read()
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").rstrip().splitlines()[-lines:])

    async def start(self) -> None:
        if self.attached:
            await self._wait_healthy(None)
            log.info("attached to vLLM", extra={"url": self.base_url})
            return
        if self.running():
            return
        command = self.command()
        await self._refuse_occupied_port()
        self._spawn(command)
        try:
            await self._wait_healthy(self._process)
        except BaseException:
            await self.stop()
            raise
        log.info("vLLM is ready", extra={"url": self.base_url, "pid": self.pid})

    async def stop(self) -> None:
        """SIGTERM to the child's process group, SIGKILL after `stop_grace_s`."""
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                self._signal_group(process, signal.SIGTERM)
                if not await self._wait_exit(process, self.stop_grace_s):
                    log.warning("vLLM ignored SIGTERM; killing it", extra={"pid": process.pid})
                    self._signal_group(process, signal.SIGKILL)
                    await self._wait_exit(process, None)
            # vLLM's own workers share the group; none may outlive the server.
            self._signal_group(process, signal.SIGKILL)
        finally:
            self._close_log()
        log.info("vLLM stopped", extra={"pid": process.pid, "returncode": process.returncode})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals --------------------------------------------------------------------------

    def _spawn(self, command: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name("vllm.log.1"))
        self._close_log()
        self._log_file = self.log_path.open("ab")
        env = vllm_environment(self._env if self._env is not None else os.environ)
        log.info("starting vLLM", extra={"command": command, "log": str(self.log_path)})
        try:
            self._process = subprocess.Popen(  # noqa: S603 - argv list from settings, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise VllmUnavailableError(
                f"could not start vLLM ({command[0]}): {exc}; is the `vllm` extra installed?",
                retry_after_s=30,
            ) from exc

    async def _refuse_occupied_port(self) -> None:
        """A stale server on our port would answer /health for a child that cannot bind."""
        async with VllmClient(self.base_url, connect_timeout_s=1.0) as client:
            if await client.health(timeout_s=2.0):
                raise VllmUnavailableError(
                    f"something already serves {self.base_url}/health (a vLLM left over from an "
                    "earlier run?); stop it, or set model.vllm.url to attach to it",
                    retry_after_s=30,
                )

    async def _wait_healthy(self, process: subprocess.Popen[bytes] | None) -> None:
        timeout_s = self.section.startup_timeout_s
        deadline = time.monotonic() + timeout_s
        async with VllmClient(self.base_url, connect_timeout_s=2.0) as client:
            while True:
                if process is not None and process.poll() is not None:
                    raise VllmUnavailableError(
                        f"vLLM exited at start-up with status {process.returncode}; "
                        f"log {self.log_path}:\n{self.log_tail()}",
                        retry_after_s=30,
                        extra={"log": str(self.log_path)},
                    )
                if await client.health(timeout_s=min(5.0, timeout_s)):
                    return
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(self.poll_interval_s)
        where = f"; log {self.log_path}:\n{self.log_tail()}" if process is not None else ""
        raise VllmUnavailableError(
            f"vLLM at {self.base_url} did not answer /health within {timeout_s:g}s{where}",
            retry_after_s=30,
        )

    @staticmethod
    async def _wait_exit(process: subprocess.Popen[bytes], timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while process.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # start_new_session=True made the child its group's leader: pgid == pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
