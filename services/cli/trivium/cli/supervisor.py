"""Running several `trivium <service> serve` processes as one stack, and stopping them together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

__all__ = ("Child", "Supervisor")


@dataclass
class Child:
    name: str
    args: list[str]
    health_url: str
    process: subprocess.Popen[bytes] | None = None


class Supervisor:
    def __init__(self, config_file: Path | None, startup_timeout_s: float = 300.0) -> None:
        self.children: list[Child] = []
        self.startup_timeout_s = startup_timeout_s
        self._env = dict(os.environ)
        if config_file is not None:
            self._env["TRIVIUM_CONFIG"] = str(config_file.resolve())
        self._stop = False

    def set_env(self, name: str, value: str) -> None:
        """Set a variable for the children started from now on."""
        self._env[name] = value

    def start(self, child: Child) -> None:
        command = [sys.executable, "-m", "trivium.cli.main", *child.args]
        child.process = subprocess.Popen(command, env=self._env)  # noqa: S603 - our own CLI
        self.children.append(child)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited at start-up (status {child.process.returncode})"
                )
            try:
                if httpx.get(child.health_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{child.name} did not become healthy in {self.startup_timeout_s:.0f}s")

    def wait(self) -> int:
        """Block until a signal asks us to stop (0) or a child dies (1)."""
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            while not self._stop:
                for child in self.children:
                    if child.process is not None and child.process.poll() is not None:
                        print(
                            f"{child.name} exited (status {child.process.returncode}); stopping",
                            file=sys.stderr,
                        )
                        return 1
                time.sleep(0.2)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def stop_all(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every child (they drain in-flight requests), newest first; SIGKILL stragglers."""
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
