"""Tiny causal LMs and LoRA adapters built locally, through the real libraries' code paths."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_TEXT = """The gateway routes each feature to a prompt, a retriever or an adapter.
Tickets about invoices and refunds go to billing; crashes and errors are bugs.
Password resets and logins are account questions. Requests for new things are features.
Every request is measured: latency, tokens, cost, errors and fallbacks.
"""


def build_tiny_base(out_dir: Path, *, context: int = 128, seed: int = 0) -> Path:
    """A randomly initialised GPT-2 (2 layers, 64 wide) with a byte-level BPE tokenizer."""
    torch.manual_seed(seed)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_TEXT.splitlines() * 4, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.padding_side = "left"
    fast.chat_template = CHAT_TEMPLATE
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=context,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_adapter(base_dir: Path, out_dir: Path, *, seed: int = 1, rank: int = 4) -> Path:
    """A real PEFT LoRA adapter with non-zero weights, so it changes the base model's output."""
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=4 * rank,
        target_modules=["c_attn", "c_proj"],
        fan_in_fan_out=True,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(GPT2LMHeadModel.from_pretrained(base_dir), config)
    model.save_pretrained(str(out_dir))
    return out_dir
