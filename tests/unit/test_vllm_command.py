"""The managed vLLM server's command line and environment (nothing is started here)."""

from __future__ import annotations

import pytest

from trivium.common.errors import InvalidInputError
from trivium.model.config import VllmSection
from trivium.model.vllm.command import RUNTIME_LORA_ENV, build_vllm_command, vllm_environment
from trivium.model.vllm.process import vllm_base_url


def flag_value(command: list[str], flag: str) -> str:
    assert command.count(flag) == 1, f"{flag} must appear exactly once in {command}"
    return command[command.index(flag) + 1]


def test_vllm_serve_with_lora_and_the_sections_settings() -> None:
    section = VllmSection(
        model="/models/llama-3.1-8b",
        host="0.0.0.0",
        port=8411,
        max_loras=4,
        max_lora_rank=64,
        gpu_memory_utilization=0.85,
    )
    command = build_vllm_command(section, "base", python="/opt/venv/bin/python")
    assert command[:3] == ["/opt/venv/bin/vllm", "serve", "/models/llama-3.1-8b"]
    assert flag_value(command, "--host") == "0.0.0.0"
    assert flag_value(command, "--port") == "8411"
    assert flag_value(command, "--served-model-name") == "base"
    assert "--enable-lora" in command
    assert flag_value(command, "--max-loras") == "4"
    assert flag_value(command, "--max-lora-rank") == "64"
    assert flag_value(command, "--gpu-memory-utilization") == "0.85"
    assert "--max-model-len" not in command  # unset: vLLM takes the model's own


def test_max_model_len_and_extra_args_come_last() -> None:
    section = VllmSection(
        model="meta-llama/Llama-3.2-1B",
        max_model_len=4096,
        extra_args=["--dtype", "bfloat16", "--max-cpu-loras=16"],
    )
    command = build_vllm_command(section, "base")
    assert flag_value(command, "--max-model-len") == "4096"
    assert command[-3:] == ["--dtype", "bfloat16", "--max-cpu-loras=16"]


def test_defaults_give_valid_numbers() -> None:
    command = build_vllm_command(VllmSection(model="m"), "tiny-base")
    assert flag_value(command, "--port") == "8400"
    assert flag_value(command, "--max-loras") == "8"
    assert flag_value(command, "--max-lora-rank") == "16"
    assert flag_value(command, "--gpu-memory-utilization") == "0.9"
    assert flag_value(command, "--served-model-name") == "tiny-base"


@pytest.mark.parametrize("url", [None, "http://10.0.0.5:8000"])
def test_a_managed_process_needs_a_model(url: str | None) -> None:
    with pytest.raises(InvalidInputError, match=r"model\.vllm\.model") as caught:
        build_vllm_command(VllmSection(url=url), "base")
    assert caught.value.field == "model.vllm.model"
    assert caught.value.status_code == 400


@pytest.mark.parametrize("rank", [4, 12, 1024])
def test_max_lora_rank_must_be_one_vllm_supports(rank: int) -> None:
    with pytest.raises(InvalidInputError, match=f"not {rank}") as caught:
        build_vllm_command(VllmSection(model="m", max_lora_rank=rank), "base")
    assert caught.value.field == "model.vllm.max_lora_rank"


@pytest.mark.parametrize(
    ("arg", "setting"),
    [
        ("--port", "model.vllm.port"),
        ("--port=9000", "model.vllm.port"),
        ("--max_loras", "model.vllm.max_loras"),
        ("--served-model-name", "model.served_model_name"),
        ("--enable-lora", "always on"),
    ],
)
def test_extra_args_may_not_override_managed_flags(arg: str, setting: str) -> None:
    section = VllmSection(model="m", extra_args=["--dtype", "half", arg, "1"])
    with pytest.raises(InvalidInputError, match=setting) as caught:
        build_vllm_command(section, "base")
    assert caught.value.field == "model.vllm.extra_args"


def test_environment_enables_runtime_lora_updating_and_keeps_the_rest() -> None:
    base = {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0", RUNTIME_LORA_ENV: "False"}
    env = vllm_environment(base)
    assert env[RUNTIME_LORA_ENV] == "True"
    assert env["PATH"] == "/usr/bin"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert base[RUNTIME_LORA_ENV] == "False", "the caller's mapping is not modified"


@pytest.mark.parametrize(
    ("section", "url"),
    [
        (VllmSection(url="http://gpu-1:8000/"), "http://gpu-1:8000"),
        (VllmSection(port=8411), "http://127.0.0.1:8411"),
        (VllmSection(host="0.0.0.0", port=1), "http://127.0.0.1:1"),
        (VllmSection(host="::", port=2), "http://[::1]:2"),
    ],
)
def test_base_url(section: VllmSection, url: str) -> None:
    assert vllm_base_url(section) == url
