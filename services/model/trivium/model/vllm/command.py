"""The command line and environment of a managed vLLM OpenAI server.

The documented, stable way to start vLLM's OpenAI-compatible server is the `vllm serve <model>`
CLI (docs: "Online Serving" / architecture overview). `python -m
vllm.entrypoints.openai.api_server` still works in many releases but is deprecated and may be
removed, so it is not used. The `vllm` console script is taken from the directory of the given
interpreter, so the process runs in the same environment as that Python.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from trivium.common.errors import InvalidInputError
from trivium.model.config import VllmSection

__all__ = ("RUNTIME_LORA_ENV", "VLLM_MAX_LORA_RANKS", "build_vllm_command", "vllm_environment")

RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
"""Unless it is True, vLLM has no /v1/load_lora_adapter and /v1/unload_lora_adapter routes."""

# vLLM accepts only these (`MaxLoRARanks` in vllm/config/lora.py; older releases a subset).
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

# Flags owned by settings: a second copy in extra_args would silently win (argparse keeps the
# last one) and, for --host/--port, make the health check poll the wrong address.
_MANAGED_FLAGS = frozenset(
    {
        "--host",
        "--port",
        "--served-model-name",
        "--enable-lora",
        "--max-loras",
        "--max-lora-rank",
        "--max-model-len",
        "--gpu-memory-utilization",
    }
)


def _flag_name(arg: str) -> str:
    # vLLM's parser accepts `--max_loras` for `--max-loras`, and `--flag=value`.
    return arg.split("=", 1)[0].replace("_", "-")


def _check_extra_args(extra_args: list[str]) -> None:
    for arg in extra_args:
        if arg.startswith("--") and _flag_name(arg) in _MANAGED_FLAGS:
            setting = _flag_name(arg)[2:].replace("-", "_")
            if setting == "served_model_name":
                setting = "model.served_model_name"
            elif setting == "enable_lora":
                setting = "(always on)"
            else:
                setting = f"model.vllm.{setting}"
            raise InvalidInputError(
                f"model.vllm.extra_args must not set {_flag_name(arg)}: it comes from {setting}",
                field="model.vllm.extra_args",
            )


def build_vllm_command(
    section: VllmSection, served_model_name: str, python: str = sys.executable
) -> list[str]:
    """`vllm serve MODEL ...` with LoRA enabled, bound to the section's host and port."""
    if not section.model:
        raise InvalidInputError(
            "a managed vLLM process needs model.vllm.model (a model path or hub id); "
            "or set model.vllm.url to attach to a running vLLM server",
            field="model.vllm.model",
        )
    if section.max_lora_rank not in VLLM_MAX_LORA_RANKS:
        raise InvalidInputError(
            f"vLLM accepts a max LoRA rank of {', '.join(map(str, VLLM_MAX_LORA_RANKS))}, "
            f"not {section.max_lora_rank}; pick the smallest at least the adapters' rank",
            field="model.vllm.max_lora_rank",
        )
    _check_extra_args(section.extra_args)
    command = [
        str(Path(python).parent / "vllm"),
        "serve",
        section.model,
        "--host",
        section.host,
        "--port",
        str(section.port),
        "--served-model-name",
        served_model_name,
        "--enable-lora",
        "--max-loras",
        str(section.max_loras),
        "--max-lora-rank",
        str(section.max_lora_rank),
        "--gpu-memory-utilization",
        str(section.gpu_memory_utilization),
    ]
    if section.max_model_len is not None:
        command += ["--max-model-len", str(section.max_model_len)]
    return command + list(section.extra_args)


def vllm_environment(base_env: Mapping[str, str]) -> dict[str, str]:
    """`base_env` plus runtime LoRA loading and unbuffered output (the log tail stays current)."""
    env = dict(base_env)
    env[RUNTIME_LORA_ENV] = "True"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
