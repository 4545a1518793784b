"""A real headless Chromium for tests: Debian's `chromium`, found or installed.

`find_chromium()` looks for the browser in this order: `TRIVIUM_CHROMIUM_BIN`, then
`/usr/bin/chromium`. When neither is there and we are root and `TRIVIUM_NO_APT` is unset, it
runs `apt-get install -y chromium` (browsers cannot be downloaded by `playwright install` here)
and says so on stderr. Otherwise it raises `ChromiumNotFoundError`, whose message names what is
missing and how to provide it; tests turn that into a failure, never a skip.

`CHROMIUM_ARGS` are the flags every test launch uses: headless, no sandbox (we run as root),
and nothing that reaches the network by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ("CHROMIUM_ARGS", "ChromiumNotFoundError", "find_chromium")

BIN_ENV = "TRIVIUM_CHROMIUM_BIN"
NO_APT_ENV = "TRIVIUM_NO_APT"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumNotFoundError(RuntimeError):
    """No usable chromium binary, and none could be installed."""


def _loud(message: str) -> None:
    bar = "=" * 78
    sys.stderr.write(f"\n{bar}\n{message}\n{bar}\n")
    sys.stderr.flush()


def _from_env_or_debian() -> Path | str:
    """The browser, or a sentence saying what is missing."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            return f"{BIN_ENV}={configured} is set, but it is not executable"
        return Path(configured)
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    return f"{DEBIAN_CHROMIUM} is missing and {BIN_ENV} is not set"


def chromium_version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return (out.stdout or out.stderr).strip() or "?"


def find_chromium() -> Path:
    found = _from_env_or_debian()
    if isinstance(found, Path):
        return found
    if os.environ.get(NO_APT_ENV):
        raise ChromiumNotFoundError(
            f"CHROMIUM IS MISSING: {found}; not installing it because {NO_APT_ENV} is set. "
            f"Install the Debian package `chromium` (apt-get install -y chromium) or point "
            f"{BIN_ENV} at a chromium binary."
        )
    if os.geteuid() != 0 or not os.access("/usr/bin/apt-get", os.X_OK):
        raise ChromiumNotFoundError(
            f"CHROMIUM IS MISSING: {found}, and it cannot be installed from here (apt-get "
            f"needs root and a Debian system). Run `sudo apt-get install -y chromium`, or "
            f"point {BIN_ENV} at a chromium binary."
        )
    _loud(f"CHROMIUM IS MISSING ({found}): running `apt-get install -y chromium` ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another developer's apt run may hold the lock: wait for it rather than fail.
    install = [
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=300",
        "install",
        "-y",
        "--no-install-recommends",
        "chromium",
    ]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:  # a stale package index is the usual cause
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    found = _from_env_or_debian()
    if isinstance(found, Path):
        _loud(f"INSTALLED the Debian package chromium: {chromium_version(found)}")
        return found
    raise ChromiumNotFoundError(
        f"CHROMIUM IS MISSING: `apt-get install -y chromium` failed "
        f"(exit {result.returncode}) and {found}:\n{result.stderr[-2000:]}"
    )
