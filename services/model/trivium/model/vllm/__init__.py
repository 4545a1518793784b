"""The GPU engine: vLLM's OpenAI server, managed or attached, with runtime LoRA adapters.

The model service proxies the OpenAI routes to vLLM (rewriting `model` to vLLM's name for
the base model or the adapter version) instead of generating itself, and keeps vLLM's loaded
adapters in step with the registry through `AdapterSync`.
"""

from trivium.model.vllm.client import UpstreamResponse, VllmClient, VllmModels, rewrite_model
from trivium.model.vllm.command import RUNTIME_LORA_ENV, build_vllm_command, vllm_environment
from trivium.model.vllm.errors import UpstreamTimeoutError, VllmResponseError, VllmUnavailableError
from trivium.model.vllm.process import ManagedVllm, vllm_base_url
from trivium.model.vllm.sync import AdapterSync, DesiredAdapters, SyncReport

__all__ = (
    "RUNTIME_LORA_ENV",
    "AdapterSync",
    "DesiredAdapters",
    "ManagedVllm",
    "SyncReport",
    "UpstreamResponse",
    "UpstreamTimeoutError",
    "VllmClient",
    "VllmModels",
    "VllmResponseError",
    "VllmUnavailableError",
    "build_vllm_command",
    "rewrite_model",
    "vllm_base_url",
    "vllm_environment",
)
