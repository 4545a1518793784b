"""A real Prometheus server for tests: found (or installed), configured, started, queried.

`find_prometheus()` looks for the binaries in this order: `TRIVIUM_PROMETHEUS_BIN` (the
`prometheus` binary; `promtool` is expected beside it), then `PATH`. When neither has them and
we are root and `TRIVIUM_NO_APT` is unset, it runs `apt-get install -y prometheus` (the Debian
package ships both) and says so on stderr. Otherwise it raises `PrometheusNotFoundError`,
whose message names what is missing and how to provide it; tests turn that into a failure,
never a skip.

`PrometheusServer` writes a config scraping the given targets (and loading rule files), runs
`prometheus` on a free loopback port with its TSDB in a temporary directory, and wraps the
HTTP API calls the tests need.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from trivium.common.redis_server import free_tcp_port

__all__ = (
    "PrometheusBinaries",
    "PrometheusNotFoundError",
    "PrometheusServer",
    "find_prometheus",
    "parse_timestamp",
)

BIN_ENV = "TRIVIUM_PROMETHEUS_BIN"
NO_APT_ENV = "TRIVIUM_NO_APT"


class PrometheusNotFoundError(RuntimeError):
    """No usable prometheus/promtool binaries, and none could be installed."""


@dataclass(frozen=True)
class PrometheusBinaries:
    prometheus: Path
    promtool: Path

    def version(self) -> str:
        out = subprocess.run(
            [str(self.prometheus), "--version"], capture_output=True, text=True, check=False
        )
        return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "?"

    def promtool_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.promtool), *args], capture_output=True, text=True, timeout=60, check=False
        )


def _loud(message: str) -> None:
    bar = "=" * 78
    sys.stderr.write(f"\n{bar}\n{message}\n{bar}\n")
    sys.stderr.flush()


def _from_env_or_path() -> PrometheusBinaries | str:
    """The binaries, or a sentence saying what is missing."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        prometheus = Path(configured)
        promtool = prometheus.with_name("promtool")
        missing = [str(p) for p in (prometheus, promtool) if not os.access(p, os.X_OK)]
        if missing:
            return f"{BIN_ENV}={configured} is set, but {' and '.join(missing)} is not executable"
        return PrometheusBinaries(prometheus, promtool)
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH and {BIN_ENV} is not set"
    return PrometheusBinaries(Path(str(found["prometheus"])), Path(str(found["promtool"])))


def find_prometheus() -> PrometheusBinaries:
    found = _from_env_or_path()
    if isinstance(found, PrometheusBinaries):
        return found
    if os.environ.get(NO_APT_ENV):
        raise PrometheusNotFoundError(
            f"PROMETHEUS IS MISSING: {found}; not installing it because {NO_APT_ENV} is set. "
            f"Install the Debian package `prometheus` (apt-get install -y prometheus) or point "
            f"{BIN_ENV} at a prometheus binary with promtool beside it."
        )
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PrometheusNotFoundError(
            f"PROMETHEUS IS MISSING: {found}, and it cannot be installed from here "
            f"(apt-get needs root and a Debian system). Run `sudo apt-get install -y "
            f"prometheus`, or point {BIN_ENV} at a prometheus binary with promtool beside it."
        )
    _loud(f"PROMETHEUS IS MISSING ({found}): running `apt-get install -y prometheus` ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:  # a stale package index is the usual cause
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    found = _from_env_or_path()
    if isinstance(found, PrometheusBinaries):
        _loud(f"INSTALLED the Debian package prometheus: {found.version()}")
        return found
    raise PrometheusNotFoundError(
        f"PROMETHEUS IS MISSING: `apt-get install -y prometheus` failed "
        f"(exit {result.returncode}) and {found}:\n{result.stderr[-2000:]}"
    )


def parse_timestamp(value: str) -> float:
    """Prometheus' RFC 3339 timestamps (nanoseconds, `Z`) as epoch seconds."""
    head, _, zone = value.partition("Z") if value.endswith("Z") else (value, "", "")
    if "." in head:
        whole, fraction = head.split(".", 1)
        digits = "".join(c for c in fraction if c.isdigit())
        rest = fraction[len(digits) :]
        head = f"{whole}.{digits[:6]}{rest}"
    return datetime.fromisoformat(head + ("+00:00" if value.endswith("Z") else zone)).timestamp()


class PrometheusServer:
    """`prometheus` on 127.0.0.1:<free port>, scraping `jobs` ({job: [base URL, ...]})."""

    def __init__(
        self,
        binaries: PrometheusBinaries,
        workdir: Path,
        jobs: dict[str, list[str]],
        rule_files: list[Path] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.binaries = binaries
        self.workdir = workdir
        self.jobs = jobs
        self.rule_files = rule_files or []
        self.interval_s = interval_s
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"
        self.config_path = workdir / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        interval = f"{int(self.interval_s * 1000)}ms"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/metrics",
                    "scrape_timeout": interval,
                    "static_configs": [
                        {"targets": [url.removeprefix("http://").rstrip("/") for url in urls]}
                    ],
                }
                for job, urls in self.jobs.items()
            ],
        }

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        check = self.binaries.promtool_run("check", "config", str(self.config_path))
        if check.returncode != 0:
            raise RuntimeError(f"promtool check config failed:\n{check.stdout}{check.stderr}")
        self.port = free_tcp_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binaries.prometheus),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited at start-up:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus did not become ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- API ------------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; the whole JSON answer, also when it is an error."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        answer: dict[str, Any] = response.json()
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query now: `{status, data: {resultType, result}}` or `{status, error}`."""
        return self.api("query", query=expr)

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["data"]["activeTargets"]
        return active

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["data"]["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["data"]["alerts"]
        return alerts

    def wait_for_scrapes(self, since: float, scrapes: int = 2, timeout_s: float = 20) -> None:
        """Wait until every target is up and was scraped `scrapes` times after `since`
        (epoch seconds), and every rule group evaluated after that."""
        ready_at = since + (scrapes - 1) * self.interval_s
        deadline = time.monotonic() + timeout_s
        while True:
            targets = self.targets()
            groups = self.rule_groups() if self.rule_files else []
            pending = [
                f"{t['labels'].get('job')} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
                for t in targets
                if t["health"] != "up" or parse_timestamp(t["lastScrape"]) < ready_at
            ]
            pending += [
                f"rule group {g['name']}"
                for g in groups
                if parse_timestamp(g["lastEvaluation"]) < ready_at + self.interval_s
            ]
            if len(targets) == sum(len(urls) for urls in self.jobs.values()) and not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus has not scraped everything yet: {pending}")
            time.sleep(0.2)
