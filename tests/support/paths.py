"""Places on disk the test session shares between its tests and the processes it starts."""

from __future__ import annotations

from pathlib import Path

__all__ = ("ONNX_CACHE",)

ONNX_CACHE = Path(__file__).resolve().parents[2] / "var" / "test-onnx-cache"
"""all-MiniLM-L6-v2's ONNX export, made once (about 10 s of CPU) and reused by every embedder
and retriever process of this and later sessions (keyed by the model's hash)."""
