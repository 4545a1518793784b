"""The CPU engine: a Hugging Face causal LM with PEFT LoRA adapters and continuous batching.

One worker thread owns the model. Requests wait in a bounded queue; between decode steps
the worker admits waiting requests into the running batch (prefilling them and merging
their KV cache), so a long generation never blocks a short one. Rows for different
adapters share a batch (PEFT's `adapter_names=`). Adapter loads and unloads run on the
same thread between steps, so they never race a forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from trivium.model.engines.base import ChatMessage, FinishReason, GenerationRequest, GenerationStep
from trivium.model.engines.kv import merge_batches, select_rows
from trivium.model.engines.sampling import choose_tokens
from trivium.model.errors import DeadlineExceededError, EngineNotReadyError, QueueFullError

__all__ = ("TransformersEngine",)

log = logging.getLogger(__name__)
BASE = "__base__"


def _send(
    loop: asyncio.AbstractEventLoop,
    steps: asyncio.Queue[GenerationStep | Exception],
    item: GenerationStep | Exception,
) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody to tell
        loop.call_soon_threadsafe(steps.put_nowait, item)


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class _Row:
    request: GenerationRequest
    emit: Callable[[GenerationStep | Exception], None]
    adapter_key: str
    generator: torch.Generator
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: list[int] = field(default_factory=list)
    emitted_chars: int = 0
    position: int = 0
    next_token: int = 0


class TransformersEngine:
    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 2,
        device: str = "cpu",
        max_batch_size: int = 8,
        batch_window_ms: float = 4.0,
        max_queue: int = 64,
        max_loaded_adapters: int = 16,
    ) -> None:
        self.model_dir = model_dir
        self.threads = threads
        self.device = _pick_device(device)
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_ms / 1000
        self.max_queue = max_queue
        self.max_loaded_adapters = max_loaded_adapters
        self._tokenizer: Any = None
        self._model: Any = None
        self._adapters: dict[str, str] = {}  # adapter id -> PEFT adapter key
        self._pending: deque[_Row] = deque()
        self._commands: deque[tuple[Callable[[], None], Future[None]]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batch_sizes: deque[int] = deque(maxlen=1024)

    # -- lifecycle -------------------------------------------------------------

    @property
    def context_window(self) -> int:
        config = self._require_model().config
        return int(getattr(config, "n_positions", None) or config.max_position_embeddings)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        self._thread = threading.Thread(target=self._run, name="transformers-engine", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        if not (self.model_dir / "config.json").is_file():
            raise EngineNotReadyError(
                f"no model at {self.model_dir} (config.json missing): run "
                "`trivium model init-demo` or set model.transformers.base_model_dir"
            )
        torch.set_num_threads(self.threads)
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        model: Any = AutoModelForCausalLM.from_pretrained(self.model_dir)
        self._model = model.to(self.device).eval()
        self._cache_kwarg = _cache_kwarg(model)
        log.info(
            "model loaded", extra={"model_dir": str(self.model_dir), "device": str(self.device)}
        )

    async def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None

    def _require_model(self) -> Any:
        if self._model is None:
            raise EngineNotReadyError("the engine is still loading its model")
        return self._model

    # -- prompts ---------------------------------------------------------------

    def encode_prompt(self, prompt: str) -> list[int]:
        self._require_model()
        ids: list[int] = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return ids

    def render_chat(self, messages: list[ChatMessage]) -> str:
        self._require_model()
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self._tokenizer, "chat_template", None):
            text: str = self._tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=True
            )
            return text
        return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"

    # -- adapters ----------------------------------------------------------------

    def loaded_adapters(self) -> frozenset[str]:
        return frozenset(self._adapters)

    async def load_adapter(self, adapter_id: str, path: Path) -> None:
        if adapter_id in self._adapters:
            return
        if len(self._adapters) >= self.max_loaded_adapters:
            raise QueueFullError(
                f"{len(self._adapters)} adapters loaded, the limit is {self.max_loaded_adapters}",
                retry_after_s=5,
            )
        key = "a" + hashlib.sha256(adapter_id.encode()).hexdigest()[:16]
        await self._on_worker(lambda: self._load_adapter(adapter_id, key, path))

    def _load_adapter(self, adapter_id: str, key: str, path: Path) -> None:
        with warnings.catch_warnings():
            # peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
            if isinstance(self._model, PeftModel):
                self._model.load_adapter(str(path), adapter_name=key)
            else:
                self._model = PeftModel.from_pretrained(self._model, str(path), adapter_name=key)
        self._model.eval()
        self._adapters[adapter_id] = key
        log.info("adapter loaded", extra={"adapter": adapter_id, "path": str(path)})

    async def unload_adapter(self, adapter_id: str) -> None:
        if adapter_id in self._adapters:
            await self._on_worker(lambda: self._unload_adapter(adapter_id))

    def _unload_adapter(self, adapter_id: str) -> None:
        key = self._adapters.pop(adapter_id, None)
        if key is None:
            return
        if self._adapters:
            # Batches name their adapters per row; PEFT's "active" one only must not be `key`.
            self._model.set_adapter(next(iter(self._adapters.values())))
            self._model.delete_adapter(key)
        else:  # PEFT cannot run with zero adapters: go back to the plain base model
            self._model = self._model.unload()
        log.info("adapter unloaded", extra={"adapter": adapter_id})

    async def sync_adapters(self, wanted: Mapping[str, Path]) -> None:
        for adapter_id in sorted(self.loaded_adapters() - wanted.keys()):
            await self.unload_adapter(adapter_id)
        for adapter_id in sorted(wanted.keys() - self.loaded_adapters()):
            try:
                await self.load_adapter(adapter_id, wanted[adapter_id])
            except Exception:
                log.exception("could not load adapter", extra={"adapter": adapter_id})

    async def _on_worker(self, command: Callable[[], None]) -> None:
        future: Future[None] = Future()
        with self._wake:
            self._commands.append((command, future))
            self._wake.notify_all()
        await asyncio.wrap_future(future)

    # -- generation --------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationStep]:
        self._require_model()
        adapter_key = BASE
        if request.adapter is not None:
            adapter_key = self._adapters.get(request.adapter, "")
            if not adapter_key:
                raise EngineNotReadyError(f"adapter {request.adapter} is not loaded")
        loop = asyncio.get_running_loop()
        steps: asyncio.Queue[GenerationStep | Exception] = asyncio.Queue()
        generator = torch.Generator()
        generator.manual_seed(
            request.params.seed if request.params.seed is not None else time.time_ns()
        )
        row = _Row(
            request=request,
            emit=lambda item: _send(loop, steps, item),
            adapter_key=adapter_key,
            generator=generator,
        )
        with self._wake:
            if len(self._pending) >= self.max_queue:
                raise QueueFullError(f"{len(self._pending)} requests waiting; try again shortly")
            self._pending.append(row)
            self._wake.notify_all()
        try:
            while True:
                item = await steps.get()
                if isinstance(item, Exception):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            row.cancelled.set()

    # -- the worker thread -----------------------------------------------------------

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        running: list[_Row] = []
        cache: DynamicCache | None = None
        mask: torch.Tensor | None = None
        while True:
            admitted = self._next_admissions(running)
            if admitted is None:
                return
            try:
                with torch.inference_mode():
                    running, cache, mask = self._step(running, admitted, cache, mask)
            except Exception as exc:  # a failed forward fails its batch, not the engine
                log.exception("generation step failed")
                for row in [*running, *admitted]:
                    row.emit(exc)
                running, cache, mask = [], None, None

    def _next_admissions(self, running: list[_Row]) -> list[_Row] | None:
        """Run queued commands; return requests to admit now (None: shut down)."""
        with self._wake:
            while True:
                if self._stopping:
                    for row in [*running, *self._pending]:
                        row.emit(EngineNotReadyError("the model service is shutting down"))
                    self._pending.clear()
                    return None
                if self._commands and not running:
                    command, future = self._commands.popleft()
                    self._run_command(command, future)
                    continue
                if running or self._pending:
                    break
                self._wake.wait()
        if not running and self.batch_window_s > 0 and len(self._pending) < self.max_batch_size:
            time.sleep(self.batch_window_s)  # let a burst arrive before the first prefill
        admitted: list[_Row] = []
        with self._wake:
            now = time.monotonic()
            while self._pending and len(running) + len(admitted) < self.max_batch_size:
                row = self._pending.popleft()
                deadline = row.request.deadline
                if row.cancelled.is_set():
                    continue
                if deadline is not None and now > deadline:
                    row.emit(
                        DeadlineExceededError("the request waited past its deadline in the queue")
                    )
                    continue
                admitted.append(row)
        return admitted

    @staticmethod
    def _run_command(command: Callable[[], None], future: Future[None]) -> None:
        try:
            command()
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)

    def _forward(
        self, rows: list[_Row], cache: DynamicCache | None = None, **inputs: Any
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Logits of the last position and the updated KV cache."""
        if self._adapters:
            inputs["adapter_names"] = [row.adapter_key for row in rows]
        if cache is not None:
            inputs[self._cache_kwarg] = cache
        out = self._model(**inputs, use_cache=True)
        returned = getattr(out, "cache", None)
        return out.logits[:, -1, :], returned if returned is not None else out.past_key_values

    def _prefill(self, rows: list[_Row]) -> tuple[torch.Tensor, DynamicCache, torch.Tensor]:
        width = max(len(row.request.prompt_ids) for row in rows)
        pad = int(self._tokenizer.pad_token_id)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            prompt = row.request.prompt_ids
            ids[index, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[index, width - len(prompt) :] = 1
            row.position = len(prompt)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(
            rows,
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
        )
        return logits, cache, mask.to(self.device)

    def _decode(
        self, rows: list[_Row], cache: DynamicCache, mask: torch.Tensor
    ) -> tuple[torch.Tensor, DynamicCache, torch.Tensor]:
        tokens = torch.tensor([[row.next_token] for row in rows], dtype=torch.long)
        positions = torch.tensor([[row.position] for row in rows], dtype=torch.long)
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        logits, cache = self._forward(
            rows,
            cache,
            input_ids=tokens.to(self.device),
            attention_mask=mask,
            position_ids=positions.to(self.device),
        )
        for row in rows:
            row.position += 1
        return logits, cache, mask

    def _step(
        self,
        running: list[_Row],
        admitted: list[_Row],
        cache: DynamicCache | None,
        mask: torch.Tensor | None,
    ) -> tuple[list[_Row], DynamicCache | None, torch.Tensor | None]:
        logits_parts = []
        if running and cache is not None and mask is not None:
            logits, cache, mask = self._decode(running, cache, mask)
            logits_parts.append(logits)
        if admitted:
            logits, new_cache, new_mask = self._prefill(admitted)
            logits_parts.append(logits)
            if cache is None or mask is None:
                cache, mask = new_cache, new_mask
            else:
                cache, mask = merge_batches((cache, mask), (new_cache, new_mask))
        rows = running + admitted
        self.batch_sizes.append(len(rows))
        chosen = choose_tokens(
            torch.cat(logits_parts),
            [row.request.params.temperature for row in rows],
            [row.request.params.top_p for row in rows],
            [row.generator for row in rows],
        )
        keep = [
            i
            for i, (row, token) in enumerate(zip(rows, chosen, strict=True))
            if self._advance(row, token)
        ]
        if not keep:
            return [], None, None
        if len(keep) < len(rows) and cache is not None and mask is not None:
            cache, mask = select_rows(cache, mask, keep)
        return [rows[i] for i in keep], cache, mask

    def _advance(self, row: _Row, token: int) -> bool:
        """Record `token` for `row` and stream its text; False when the row is finished."""
        if row.cancelled.is_set():
            return False
        deadline = row.request.deadline
        if deadline is not None and time.monotonic() > deadline:
            row.emit(DeadlineExceededError("generation ran past the request deadline"))
            return False
        params = row.request.params
        row.generated.append(token)
        row.next_token = token
        finished_by_eos = token == self._tokenizer.eos_token_id and not params.ignore_eos
        text = self._tokenizer.decode(row.generated, skip_special_tokens=True)
        finish: FinishReason | None = "stop" if finished_by_eos else None
        for stop in params.stop:
            at = text.find(stop)
            if at != -1:
                text, finish = text[:at], "stop"
        if finish is None and len(row.generated) >= params.max_tokens:
            finish = "length"
        if finish is None:
            # Hold back a tail that could be the start of a stop string, and any partial
            # UTF-8 character the tokenizer renders as U+FFFD.
            hold = max((len(s) - 1 for s in params.stop), default=0)
            visible = len(text) - hold
            while visible > row.emitted_chars and text[visible - 1] == "\ufffd":
                visible -= 1
            if visible > row.emitted_chars:
                row.emit(GenerationStep(text[row.emitted_chars : visible], len(row.generated)))
                row.emitted_chars = visible
            return True
        row.emit(GenerationStep(text[row.emitted_chars :], len(row.generated), finish))
        return False


def _cache_kwarg(model: Any) -> str:
    """transformers 5.24 renamed `past_key_values` to `cache`; speak whichever this one takes."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
