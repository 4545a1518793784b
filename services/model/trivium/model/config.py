"""The model service's process settings (`model:` in the file, `TRIVIUM_MODEL__*` in env)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from trivium.common.settings import Section, TriviumSettings

__all__ = ("ModelSection", "ModelSettings", "TransformersSection", "VllmSection")


class TransformersSection(Section):
    """The CPU engine (embedded default, tests): a base causal LM plus PEFT LoRA adapters."""

    base_model_dir: Path | None = Field(
        default=None, description="HF model directory; unset: data_dir/models/demo-base"
    )
    torch_threads: int = Field(default=2, ge=1, description="intra-op threads; keep <= cores")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    micro_batching: bool = True
    max_batch_size: int = Field(default=8, ge=1, le=256)
    batch_window_ms: float = Field(default=4.0, ge=0, description="wait this long to fill a batch")
    max_queue: int = Field(default=64, ge=1, description="waiting requests before 503")
    max_loaded_adapters: int = Field(default=16, ge=1)


class VllmSection(Section):
    """The GPU engine: vLLM's OpenAI server with runtime LoRA loading."""

    url: str | None = Field(default=None, description="attach to a running vLLM; unset: spawn one")
    model: str | None = Field(default=None, description="model path for the managed vLLM process")
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=1, le=65535)
    max_loras: int = Field(default=8, ge=1)
    max_lora_rank: int = Field(default=16, ge=1)
    max_model_len: int | None = Field(default=None, ge=16)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    extra_args: list[str] = Field(default_factory=list)
    startup_timeout_s: float = Field(default=900, gt=0)
    request_timeout_s: float = Field(default=300, gt=0)
    metrics_poll_s: float = Field(
        default=2.0, gt=0, description="how often to read vLLM's queue depth from its /metrics"
    )


class ModelSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8300, ge=0, le=65535)
    engine: Literal["transformers", "vllm"] = "transformers"
    served_model_name: str = Field(default="base", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    adapter_store_dir: Path | None = Field(
        default=None, description="content-addressed adapter copies; unset: data_dir/adapters"
    )
    request_timeout_s: float = Field(default=60, gt=0, description="per-request deadline")
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    graceful_shutdown_s: float = Field(default=30.0, ge=0)
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    admin_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="actor name -> bearer token for /v1/adapters writes; empty leaves them open",
    )
    insecure: bool = Field(
        default=False,
        description="serve writes without admin_tokens on a non-loopback host (trusted networks)",
    )
    transformers: TransformersSection = TransformersSection()
    vllm: VllmSection = VllmSection()


class ModelSettings(TriviumSettings):
    model: ModelSection = ModelSection()

    @property
    def base_model_dir(self) -> Path:
        return self.model.transformers.base_model_dir or self.data_dir / "models" / "demo-base"

    @property
    def adapter_store_dir(self) -> Path:
        return self.model.adapter_store_dir or self.data_dir / "adapters"
