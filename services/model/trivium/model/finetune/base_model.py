"""The base model an adapter is trained on: loading it and naming it by content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from trivium.common.errors import InvalidInputError

__all__ = ("base_model_sha256", "context_window", "load_base", "model_type")


def _require_model_dir(base_dir: Path) -> None:
    if not (base_dir / "config.json").is_file():
        raise InvalidInputError(
            f"{base_dir} is not a Hugging Face model directory (no config.json)", field="base"
        )


def model_type(base_dir: Path) -> str:
    """`model_type` from the directory's config.json ("gpt2", "llama", ...)."""
    _require_model_dir(base_dir)
    path = base_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}", field="base") from exc
    kind = config.get("model_type") if isinstance(config, dict) else None
    return kind if isinstance(kind, str) else ""


def _weight_files(base_dir: Path) -> list[Path]:
    safetensors = sorted(base_dir.glob("*.safetensors"))
    return safetensors or sorted(base_dir.glob("pytorch_model*.bin"))


def base_model_sha256(base_dir: Path) -> str:
    """sha256 over config.json and the weight files (names and bytes, in name order)."""
    _require_model_dir(base_dir)
    weights = _weight_files(base_dir)
    if not weights:
        raise InvalidInputError(f"{base_dir} holds no model weights", field="base")
    digest = hashlib.sha256()
    for path in [base_dir / "config.json", *weights]:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_base(base_dir: Path) -> tuple[Any, Any]:
    """The model (eval mode, on CPU) and its tokenizer, padded on the left with a pad token."""
    _require_model_dir(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(str(base_dir))
    model.eval()
    return model, tokenizer


def context_window(model: Any) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or config.max_position_embeddings)
