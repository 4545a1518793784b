"""The fine-tune road end to end on a small demo base: build, train, evaluate, register.

Everything runs for real: the tokenizer and model are trained here, the adapter is trained
with PEFT, and registration goes into a private redis-server. Sizes and steps are cut down
so the module runs in well under a minute on two cores.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trivium.common.errors import InvalidInputError
from trivium.common.redis import redis_from_url
from trivium.common.redis_server import RedisServerProcess
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.model.adapters import ADAPTER_KIND, AdapterStore
from trivium.model.adapters.store import adapter_identity
from trivium.model.config import ModelSection, ModelSettings, TransformersSection
from trivium.model.demo import DEMO_ADAPTER, DEMO_LABEL, build_demo_base, run_init_demo
from trivium.model.demo.init import _current_adapter, demo_training_set
from trivium.model.engines.base import ChatMessage, GenerationRequest, SamplingParams
from trivium.model.engines.transformers_engine import TransformersEngine
from trivium.model.finetune import (
    METADATA_FILE,
    base_model_sha256,
    dataset_sha256,
    finetune,
    load_dataset,
    register_finetuned,
    run_finetune_command,
)
from trivium.model.finetune.base_model import context_window, load_base
from trivium.model.finetune.evaluate import greedy_completions
from trivium.model.finetune.prompts import encode_examples
from trivium.registry import Registry

SMALL_BASE: dict[str, Any] = {
    "vocab_size": 800,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 2,
    "n_positions": 256,
    "pretrain_steps": 500,
    "batch_size": 8,
    "block_size": 64,
    "progress": False,
}
QUICK: dict[str, Any] = {"epochs": 2, "batch_size": 8, "progress": False}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_demo_base(tmp_path_factory.mktemp("demo") / "base", **SMALL_BASE)
    return built.resolve()


@pytest.fixture(scope="module")
def triage_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 of the shipped triage examples."""
    text = resources.files("trivium.model.data").joinpath("triage.jsonl").read_text("utf-8")
    path = tmp_path_factory.mktemp("data") / "triage-60.jsonl"
    path.write_text("\n".join(text.splitlines()[:60]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def adapter_registry(redis_server: RedisServerProcess) -> AsyncIterator[Registry]:
    client = redis_from_url(redis_server.url, RedisSettings())
    registry = Registry(client, ADAPTER_KIND, RegistrySettings(key_prefix=_prefix()), cache=False)
    yield registry
    await client.aclose()


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_demo_base_is_a_loadable_chat_model(base_dir: Path) -> None:
    names = {p.name for p in base_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not base_dir.with_name("base.building").exists()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    assert tokenizer.padding_side == "left"
    assert tokenizer.eos_token == "<|endoftext|>" == tokenizer.bos_token
    assert tokenizer.pad_token is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids("<|assistant|>") in ids, "role markers stay atomic"
    assert tokenizer.decode(tokenizer("naïve café ✓")["input_ids"]) == "naïve café ✓"
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir)
    assert model.config.n_embd == 64
    assert model.config.vocab_size == len(tokenizer)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))


def test_demo_base_is_deterministic_and_refuses_a_full_dir(tmp_path: Path) -> None:
    tiny = {**SMALL_BASE, "pretrain_steps": 5}
    first = build_demo_base(tmp_path / "a", **tiny)
    second = build_demo_base(tmp_path / "b", **tiny)
    other_seed = build_demo_base(tmp_path / "c", seed=1, **tiny)
    assert base_model_sha256(first) == base_model_sha256(second)
    assert base_model_sha256(first) != base_model_sha256(other_seed)
    with pytest.raises(InvalidInputError, match="not empty") as caught:
        build_demo_base(first, **tiny)
    assert caught.value.field == "out_dir"


async def test_finetune_then_register_idempotently(
    base_dir: Path, triage_subset: Path, tmp_path: Path, adapter_registry: Registry
) -> None:
    out_dir = tmp_path / "adapter"
    report = finetune(base_dir, triage_subset, out_dir, **QUICK)

    assert (out_dir / "adapter_config.json").is_file()
    assert (out_dir / "adapter_model.safetensors").is_file()
    metrics = report.metrics
    assert (metrics.train_examples, metrics.eval_examples) == (48, 12)
    for loss in (metrics.eval_loss, metrics.base_eval_loss, metrics.train_loss):
        assert math.isfinite(loss)
        assert loss > 0
    assert 0 <= metrics.exact_match <= 1
    assert 0 <= metrics.base_exact_match <= 1
    assert metrics.eval_loss < metrics.base_eval_loss, "training did not move the held-out loss"

    document = json.loads((out_dir / METADATA_FILE).read_text())
    assert document["base_model"] == str(base_dir)
    assert document["base_model_sha256"] == base_model_sha256(base_dir)
    assert document["dataset_sha256"] == dataset_sha256(triage_subset)
    assert document["hyperparameters"]["rank"] == 8
    assert document["hyperparameters"]["target_modules"] == ["c_attn", "c_proj", "c_fc"]
    assert set(document["metrics"]) >= {
        "eval_loss",
        "exact_match",
        "base_exact_match",
        "train_examples",
        "eval_examples",
    }
    assert document["prompt_format"]["rendered_example"] == "<|user|>\n<prompt>\n<|assistant|>\n"
    assert document["timings"]["train_seconds"] > 0
    identity = adapter_identity(out_dir)
    assert identity["base_model"] == str(base_dir)
    assert identity["rank"] == 8

    adapted: Any = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), str(out_dir)
    )
    plain: Any = AutoModelForCausalLM.from_pretrained(base_dir)
    probe = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(adapted(probe).logits, plain(probe).logits)

    store = AdapterStore(tmp_path / "store", adapter_registry)
    first = await register_finetuned(store, "triage-test", out_dir, report, actor="tests")
    assert first.created
    assert first.artifact.version == 1
    stored = Path(first.artifact.body)
    assert stored.is_relative_to(tmp_path / "store")
    assert (stored / "adapter_config.json").is_file()
    resolved = await adapter_registry.resolve("triage-test@1")
    assert resolved.metadata["base_model_sha256"] == report.base_model_sha256
    assert resolved.metadata["metrics"]["eval_examples"] == 12
    assert resolved.metadata["weights_sha256"] == identity["weights_sha256"]
    assert resolved.metadata["prompt_format"] == report.prompt_format
    assert resolved.metadata["timings"]["train_seconds"] == report.train_seconds  # trials price it
    assert resolved.created_by == "tests"

    again = await register_finetuned(store, "triage-test", out_dir, report, actor="tests")
    assert not again.created
    assert again.artifact.version == 1
    assert again.artifact.sha256 == first.artifact.sha256
    assert [v.version for v in await adapter_registry.versions("triage-test")] == [1]


def test_finetune_rejects_bad_arguments(
    base_dir: Path, triage_subset: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        finetune(tmp_path / "nowhere", triage_subset, tmp_path / "out", **QUICK)
    assert caught.value.field == "base"
    with pytest.raises(InvalidInputError) as caught:
        finetune(base_dir, triage_subset, tmp_path / "out", rank=0, **QUICK)
    assert caught.value.field == "rank"
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError) as caught:
        finetune(base_dir, triage_subset, full, **QUICK)
    assert caught.value.field == "out_dir"
    too_long = tmp_path / "long.jsonl"
    long_record = {"prompt": "word " * 400, "completion": "bug"}
    short_record = {"prompt": "ok", "completion": "bug"}
    too_long.write_text(f"{json.dumps(short_record)}\n{json.dumps(long_record)}\n")
    with pytest.raises(InvalidInputError, match="context is 256") as caught:
        finetune(base_dir, too_long, tmp_path / "out2", **QUICK)
    assert caught.value.field == "data:line 2"


def _settings(tmp_path: Path, base_dir: Path, redis_url: str) -> ModelSettings:
    return ModelSettings(
        data_dir=tmp_path / "data",
        redis=RedisSettings(url=redis_url),
        registry=RegistrySettings(key_prefix=_prefix()),
        model=ModelSection(transformers=TransformersSection(base_model_dir=base_dir)),
    )


async def test_finetune_command_registers_and_promotes(
    base_dir: Path, triage_subset: Path, tmp_path: Path, redis_server: RedisServerProcess
) -> None:
    settings = _settings(tmp_path, base_dir, redis_server.url)
    report = await run_finetune_command(
        settings, base_dir, triage_subset, "tickets", "canary", epochs=1, progress=False
    )
    assert report.version == 1
    assert report.name == "tickets"
    assert report.adapter_dir.is_relative_to(settings.adapter_store_dir)
    assert (report.adapter_dir / METADATA_FILE).is_file()
    assert report.summary().startswith("tickets@1: exact match ")
    client = redis_from_url(redis_server.url, RedisSettings())
    try:
        registry = Registry(client, ADAPTER_KIND, settings.registry, cache=False)
        assert await registry.labels("tickets") == {"canary": 1}
        canary = await registry.resolve("tickets@canary")
        assert canary.body == str(report.adapter_dir)
        assert canary.metadata["metrics"]["exact_match"] == report.metrics.exact_match
    finally:
        await client.aclose()


async def test_init_demo_trains_once_then_reuses_the_adapter(
    base_dir: Path, tmp_path: Path, redis_server: RedisServerProcess
) -> None:
    """The small base stands in for the demo base (already built, so init-demo keeps it);
    the adapter is trained on the training side of the shipped triage split, as in a real
    `init-demo`; a production adapter trained on another set is not reused."""
    settings = _settings(tmp_path, base_dir, redis_server.url)
    first = await run_init_demo(settings, progress=False)
    assert not first.base_built
    assert first.adapter_trained
    assert first.adapter_ref == f"{DEMO_ADAPTER}@1"
    assert first.metrics["train_examples"] + first.metrics["eval_examples"] == 290
    # Even this small base learns the task from the 261 tickets it trains on (measured: 55%
    # of its 29 validation tickets, 5 labels); the base never does.
    assert first.metrics["exact_match"] >= 0.45
    assert first.metrics["base_exact_match"] <= 0.1
    assert first.metrics["eval_loss"] < first.metrics["base_eval_loss"]
    assert DEMO_ADAPTER in first.summary()
    assert "exact match" in first.summary()

    second = await run_init_demo(settings, progress=False)
    assert not second.adapter_trained
    assert second.adapter_ref == first.adapter_ref
    assert second.metrics == first.metrics
    client = redis_from_url(redis_server.url, RedisSettings())
    try:
        registry = Registry(client, ADAPTER_KIND, settings.registry, cache=False)
        assert await registry.labels(DEMO_ADAPTER) == {DEMO_LABEL: 1}
        trained = await registry.resolve(f"{DEMO_ADAPTER}@{DEMO_LABEL}")
        training_set = hashlib.sha256(demo_training_set()).hexdigest()
        assert trained.metadata["dataset_sha256"] == training_set
        base_sha = trained.metadata["base_model_sha256"]
        assert await _current_adapter(registry, base_sha, training_set) == trained
        # Trained on another set (e.g. every ticket, held-out ones included): not reused.
        assert await _current_adapter(registry, base_sha, "0" * 64) is None
    finally:
        await client.aclose()


async def test_the_engine_serves_the_adapter_as_it_was_evaluated(
    base_dir: Path, triage_subset: Path, tmp_path: Path
) -> None:
    """A chat request to the CPU engine reproduces the training prompt format: its greedy
    answers equal the greedy completions the fine-tune evaluated."""
    out_dir = tmp_path / "adapter"
    finetune(base_dir, triage_subset, out_dir, epochs=3, batch_size=8, progress=False)
    examples = load_dataset(triage_subset)[:6]
    model, tokenizer = load_base(base_dir)
    peft_model: Any = PeftModel.from_pretrained(model, str(out_dir))
    rows = encode_examples(tokenizer, examples, context_window(model))
    expected = greedy_completions(peft_model, tokenizer, rows, batch_size=6)

    engine = TransformersEngine(base_dir, threads=2)
    await engine.start()
    try:
        await engine.load_adapter("triage@1", out_dir)
        for example, row, want in zip(examples, rows, expected, strict=True):
            messages = [ChatMessage(m.role, m.content) for m in example.prompt]
            prompt_ids = engine.encode_prompt(engine.render_chat(messages))
            assert prompt_ids == row.prompt_ids
            params = SamplingParams(max_tokens=len(row.completion_ids) + 1, temperature=0)
            request = GenerationRequest("r", prompt_ids, params, adapter="triage@1")
            text = "".join([step.text async for step in engine.generate(request)])
            assert text.strip() == want.strip()
    finally:
        await engine.close()


async def test_a_configured_non_gpt2_base_gets_no_demo_adapter(
    tmp_path: Path, triage_subset: Path
) -> None:
    """A real model in base_model_dir is left alone: no build, no training, no Redis needed."""
    real = tmp_path / "real-model"
    real.mkdir()
    (real / "config.json").write_text(json.dumps({"model_type": "llama"}))
    settings = ModelSettings(
        data_dir=tmp_path / "data",
        model=ModelSection(transformers=TransformersSection(base_model_dir=real)),
    )
    report = await run_init_demo(settings, progress=False)
    assert report.adapter_ref is None
    assert not report.base_built
    assert not report.adapter_trained
    assert "no demo adapter" in report.summary()
    assert sorted(p.name for p in real.iterdir()) == ["config.json"]
    with pytest.raises(InvalidInputError, match="llama model") as caught:
        finetune(real, triage_subset, tmp_path / "out", **QUICK)
    assert caught.value.field == "base"
