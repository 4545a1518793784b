"""Registering adapters: copy the PEFT directory into a content-addressed store, then publish.

Registry versions are immutable, so the registry must not point at a directory someone can
overwrite: `register` copies the adapter to `<store>/<name>/<weights sha256[:16]>/` and
publishes that path. The store directory must be shared by every model-service replica
(a ReadWriteMany volume in Kubernetes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from trivium.common.errors import NotFoundError
from trivium.registry import PublishResult, Registry
from trivium.registry.errors import InvalidArtifactError

__all__ = ("AdapterNotFoundError", "AdapterStore", "adapter_identity")


class AdapterNotFoundError(NotFoundError):
    code = "adapter_not_found"


_WEIGHT_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def adapter_identity(adapter_dir: Path) -> dict[str, Any]:
    """Base model, rank, target modules and a sha256 over the config and weights."""
    config_path = adapter_dir / "adapter_config.json"
    try:
        found = config_path.is_file()
    except OSError:  # a name too long for the file system, say
        found = False
    if not found:
        raise AdapterNotFoundError(
            f"no PEFT adapter at {adapter_dir} (no adapter_config.json)", field="path"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidArtifactError(f"{config_path} is not valid JSON: {exc}", field="path") from exc
    digest = hashlib.sha256()
    for name in _WEIGHT_FILES:
        path = adapter_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return {
        "base_model": str(config.get("base_model_name_or_path") or ""),
        "rank": int(config.get("r", 0)),
        "target_modules": sorted(config.get("target_modules") or []),
        "peft_type": str(config.get("peft_type", "")),
        "weights_sha256": digest.hexdigest(),
    }


class AdapterStore:
    def __init__(self, root: Path, registry: Registry) -> None:
        self.root = root
        self.registry = registry

    async def register(
        self,
        name: str,
        adapter_dir: Path,
        metadata: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> PublishResult:
        """Copy `adapter_dir` into the store and publish it as a new version of `name`."""
        identity = adapter_identity(adapter_dir)
        target = self.root / name / identity["weights_sha256"][:16]
        if not target.exists():
            staging = target.with_name(target.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(adapter_dir, staging)
            staging.rename(target)
        merged = {**(metadata or {}), **identity}
        return await self.registry.publish(name, str(target.resolve()), merged, actor=actor)
