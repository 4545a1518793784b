"""One ONNX Runtime session on the CPU: tokenizer output in, the graph's only output out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ("OnnxModel", "onnxruntime_available")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxModel:
    """Thread-safe to call (ONNX Runtime sessions are); callers serialize to keep the cores."""

    def __init__(self, path: Path, *, threads: int, input_names: Sequence[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; fusions it cannot apply are not news
        # Idle workers sleep instead of spinning: on a small shared CPU, spinning threads take
        # the cores the event loop and the other model need (measured: query p50 ~2x better).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph_inputs = {i.name for i in self._session.get_inputs()}
        self._names = tuple(name for name in input_names if name in graph_inputs)

    def run(self, features: Mapping[str, Any]) -> np.ndarray:
        feed = {name: np.asarray(features[name], dtype=np.int64) for name in self._names}
        output: np.ndarray = self._session.run(None, feed)[0]
        return output
