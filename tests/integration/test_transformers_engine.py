"""The CPU engine against Hugging Face's own `generate`: batching must not change the output."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from transformers import AutoTokenizer, GPT2LMHeadModel

from tests.support.tiny_models import build_tiny_base
from trivium.model.engines.base import GenerationRequest, SamplingParams
from trivium.model.engines.transformers_engine import TransformersEngine
from trivium.model.errors import EngineNotReadyError, QueueFullError

PROMPTS = [
    "The gateway routes",
    "Tickets",
    "Every request is measured: latency, tokens, cost and errors and more",
    "x",
]


def reference(tiny: dict[str, Path], prompt: str, adapter: str | None, max_tokens: int) -> str:
    """Greedy continuation by transformers' `generate`, one prompt at a time."""
    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    model: Any = GPT2LMHeadModel.from_pretrained(tiny["base"])
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(tiny[f"adapter_{adapter}"]))
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return str(tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True))


async def run(
    engine: TransformersEngine, prompt: str, adapter: str | None, max_tokens: int, delay: float
) -> tuple[str, int]:
    await asyncio.sleep(delay)
    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    request = GenerationRequest(prompt, engine.encode_prompt(prompt), params, adapter=adapter)
    text, tokens = "", 0
    async for step in engine.generate(request):
        text += step.text
        tokens = step.completion_tokens
    return text, tokens


async def test_continuous_batching_with_mixed_adapters_matches_generate(
    tiny: dict[str, Path],
) -> None:
    engine = TransformersEngine(tiny["base"], threads=1, max_batch_size=4, batch_window_ms=2)
    await engine.start()
    try:
        await engine.load_adapter("a@1", tiny["adapter_a"])
        await engine.load_adapter("b@1", tiny["adapter_b"])
        jobs = [
            (PROMPTS[0], None, 20, 0.0),
            (PROMPTS[1], "a@1", 12, 0.01),
            (PROMPTS[2], "b@1", 8, 0.03),
            (PROMPTS[3], "a@1", 25, 0.0),
            (PROMPTS[0], "b@1", 16, 0.05),
            (PROMPTS[1], None, 5, 0.02),
        ]
        results = await asyncio.gather(*(run(engine, *job) for job in jobs))
        for (prompt, adapter, max_tokens, _), (text, tokens) in zip(jobs, results, strict=True):
            assert tokens == max_tokens
            assert text == reference(tiny, prompt, adapter and adapter[0], max_tokens)
        assert max(engine.batch_sizes) > 1, "requests were never batched together"
        assert min(engine.batch_sizes) < max(engine.batch_sizes), "rows never joined or left"
    finally:
        await engine.close()


async def test_adapters_load_unload_and_unknown(tiny: dict[str, Path]) -> None:
    engine = TransformersEngine(tiny["base"], threads=1, max_loaded_adapters=2)
    await engine.start()
    try:
        await engine.load_adapter("a@1", tiny["adapter_a"])
        await engine.load_adapter("b@1", tiny["adapter_b"])
        assert engine.loaded_adapters() == {"a@1", "b@1"}
        with pytest.raises(QueueFullError, match="the limit is 2"):
            await engine.load_adapter("c@1", tiny["adapter_b"])
        await engine.unload_adapter("a@1")  # the first loaded, PEFT's active adapter
        assert engine.loaded_adapters() == {"b@1"}
        text, _ = await run(engine, "x", "b@1", 3, 0)
        assert text == reference(tiny, "x", "b", 3)
        await engine.unload_adapter("b@1")  # the last one
        assert engine.loaded_adapters() == frozenset()
        params = SamplingParams(max_tokens=2, temperature=0)
        request = GenerationRequest("r", engine.encode_prompt("x"), params, adapter="a@1")
        with pytest.raises(EngineNotReadyError, match="not loaded"):
            await anext(aiter(engine.generate(request)))
        text, _ = await run(engine, "x", None, 3, 0)  # the base still serves
        assert text == reference(tiny, "x", None, 3)
        await engine.load_adapter("a@1", tiny["adapter_a"])  # and adapters load again after that
        text, _ = await run(engine, "x", "a@1", 3, 0)
        assert text == reference(tiny, "x", "a", 3)
    finally:
        await engine.close()


async def test_missing_model_directory_is_a_clear_start_up_error(tmp_path: Path) -> None:
    engine = TransformersEngine(tmp_path / "nothing-here")
    with pytest.raises(EngineNotReadyError, match="trivium model init-demo"):
        await engine.start()


async def test_end_of_sequence_stops_unless_ignored(tmp_path: Path) -> None:
    """Make the token greedy decoding picks first the end-of-sequence token, then generate."""
    base = build_tiny_base(tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model: Any = GPT2LMHeadModel.from_pretrained(base)
    inputs = tokenizer("x", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        first = int(model(**inputs).logits[0, -1].argmax())
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(first)
    tokenizer.save_pretrained(base)

    engine = TransformersEngine(base, threads=1)
    await engine.start()
    try:
        finishes = {}
        for ignore_eos in (False, True):
            params = SamplingParams(max_tokens=6, temperature=0, ignore_eos=ignore_eos)
            request = GenerationRequest("r", engine.encode_prompt("x"), params)
            steps = [step async for step in engine.generate(request)]
            finishes[ignore_eos] = (steps[-1].finish_reason, steps[-1].completion_tokens)
        assert finishes[False] == ("stop", 1)
        assert finishes[True] == ("length", 6)
    finally:
        await engine.close()
