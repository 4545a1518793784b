"""Exported ONNX models on disk, keyed by the source model's hash and checked on every load.

An export lives in `<root>/<kind>-<variant>-<model digest>-r<recipe>/` with `model.onnx` and a
`manifest.json` that records the digests of both; a directory whose manifest is missing or
unreadable, or whose model no longer hashes to the recorded digest, is exported again. Exports
are written to a staging directory and renamed into place, so a crash mid-export leaves no
half-written entry and two processes exporting at once both end with a whole one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("MODEL_FILE", "RECIPE", "CachedExport", "ExportKey", "OnnxCache", "model_digest")

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
RECIPE = "1"
"""Bumped whenever the export itself changes, so older exports are not reused."""

_SKIPPED_DIRS = frozenset({"onnx", "openvino"})  # other tools' exports inside a model dir


def model_digest(model_dir: Path) -> str:
    """sha256 over every file of a model directory (relative path and bytes), in path order."""
    digest = hashlib.sha256()
    for path in sorted(_model_files(model_dir)):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        digest.update(_file_sha256(path).encode() + b"\0")
    return digest.hexdigest()


def _model_files(model_dir: Path) -> list[Path]:
    files = []
    for path in model_dir.rglob("*"):
        parts = path.relative_to(model_dir).parts
        if path.is_file() and parts[0] not in _SKIPPED_DIRS and not parts[0].startswith("."):
            files.append(path)
    return files


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ExportKey:
    kind: str
    """What the graph computes: "embedding" or "cross-encoder"."""
    variant: str
    """"fp32" or an opt-in lossy variant such as "int8"."""
    model_digest: str

    @property
    def dirname(self) -> str:
        return f"{self.kind}-{self.variant}-{self.model_digest[:32]}-r{RECIPE}"


@dataclass(frozen=True, slots=True)
class CachedExport:
    path: Path
    """The model.onnx file."""
    reused: bool
    manifest: dict[str, Any]


Exporter = Callable[[Path], dict[str, Any]]
"""Writes MODEL_FILE into the given directory; returns facts for the manifest."""


class OnnxCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def get_or_export(self, key: ExportKey, export: Exporter) -> CachedExport:
        target = self.root / key.dirname
        manifest = self._valid_manifest(target, key)
        if manifest is not None:
            log.info("onnx export reused", extra={"path": str(target), "kind": key.kind})
            return CachedExport(target / MODEL_FILE, True, manifest)
        if target.exists():
            log.warning(
                "onnx export cache entry invalid; exporting again", extra={"path": str(target)}
            )
            shutil.rmtree(target, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=self.root))
        try:
            began = time.perf_counter()
            facts = export(staging)
            manifest = {
                "kind": key.kind,
                "variant": key.variant,
                "model_digest": key.model_digest,
                "recipe": RECIPE,
                "onnx_sha256": _file_sha256(staging / MODEL_FILE),
                "export_seconds": round(time.perf_counter() - began, 3),
                **facts,
            }
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
            try:
                os.replace(staging, target)
            except OSError:  # another process renamed its export into place first
                if self._valid_manifest(target, key) is None:
                    raise
            log.info(
                "onnx export written",
                extra={"path": str(target), "kind": key.kind, **_loggable(manifest)},
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CachedExport(target / MODEL_FILE, False, manifest)

    @staticmethod
    def _valid_manifest(target: Path, key: ExportKey) -> dict[str, Any] | None:
        try:
            manifest: dict[str, Any] = json.loads((target / MANIFEST_FILE).read_text())
            model_hash = _file_sha256(target / MODEL_FILE)
        except (OSError, ValueError):
            return None
        if (
            manifest.get("model_digest") != key.model_digest
            or manifest.get("recipe") != RECIPE
            or manifest.get("onnx_sha256") != model_hash
        ):
            return None
        return manifest


def _loggable(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if isinstance(v, int | float | str)}
