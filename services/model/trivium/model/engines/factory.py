"""Building the configured engine."""

from __future__ import annotations

from trivium.model.config import ModelSettings
from trivium.model.engines.transformers_engine import TransformersEngine

__all__ = ("build_engine",)


def build_engine(settings: ModelSettings) -> TransformersEngine:
    section = settings.model.transformers
    return TransformersEngine(
        settings.base_model_dir,
        threads=section.torch_threads,
        device=section.device,
        max_batch_size=section.max_batch_size if section.micro_batching else 1,
        batch_window_ms=section.batch_window_ms if section.micro_batching else 0.0,
        max_queue=section.max_queue,
        max_loaded_adapters=section.max_loaded_adapters,
    )
