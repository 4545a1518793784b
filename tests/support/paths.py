"""Places on disk the test session shares between its tests and the processes it starts."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ("ONNX_CACHE", "SHARED_DATA")

ONNX_CACHE = Path(__file__).resolve().parents[2] / "var" / "test-onnx-cache"
"""all-MiniLM-L6-v2's ONNX export, made once (about 10 s of CPU) and reused by every embedder
and retriever process of this and later sessions (keyed by the model's hash)."""


def _shared_data() -> Path:
    """The team's shared data (`../shared/data` beside the checkout, as the design brief says);
    `TRIVIUM_SHARED_DATA` points elsewhere, for a checkout cloned somewhere else."""
    configured = os.environ.get("TRIVIUM_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


SHARED_DATA = _shared_data()
