"""The key pepper: `gateway.auth.pepper`, else one kept beside the data (loopback setups)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

__all__ = ("load_pepper", "pepper_file")


def pepper_file(data_dir: Path) -> Path:
    return data_dir / "auth" / "pepper"


def load_pepper(configured: SecretStr | None, data_dir: Path) -> bytes:
    """The configured pepper, or the data directory's (created once, mode 0600)."""
    if configured is not None:
        return configured.get_secret_value().encode()
    path = pepper_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
