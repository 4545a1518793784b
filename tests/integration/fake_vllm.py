"""A stand-in for vLLM's OpenAI server (we cannot run vLLM without a GPU), over real HTTP.

It speaks the parts of vLLM's protocol the model service uses, with vLLM's status codes and
error bodies (nested `{"error": {...}}` shape of current releases, or the flat shape of
<= 0.9 with `legacy_errors`):

* `GET /health`: 200, empty body.
* `GET /v1/models`: the base model, then each loaded LoRA with `parent` (base id) and `root`
  (the path it was loaded from).
* `POST /v1/load_lora_adapter` / `POST /v1/unload_lora_adapter`: only when
  VLLM_ALLOW_RUNTIME_LORA_UPDATING is true (else FastAPI's 404 `{"detail": "Not Found"}`);
  200 with a plain-text "Success: ..." body; 400 for a duplicate name, 404 for a missing path
  or an unknown name on unload.
* `POST /v1/chat/completions` and `/v1/completions`: 404 for an unknown model, else a
  completion echoing the requested `model`; with `"stream": true`, SSE chunks ending in
  `data: [DONE]`.

Use it in-process (`FakeVllm`: uvicorn in a background thread; `restart()` forgets the loaded
adapters the way a restarted vLLM does) or as a child process:
`python -m tests.integration.fake_vllm --port N [--model NAME] [--fail-at-startup MESSAGE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.response import Stream

from trivium.common.redis_server import free_tcp_port

__all__ = ("FakeVllm", "FakeVllmState", "create_app")

WORDS = ("Tickets", " are", " routed", " by", " the", " gateway", " to", " a", " model", ".")


@dataclass
class FakeVllmState:
    base_model: str = "base"
    base_root: str = "/models/base"
    runtime_lora_updating: bool = True
    legacy_errors: bool = False
    loras: dict[str, str] = field(default_factory=dict)
    """Loaded LoRA name -> path, in load order."""
    delay_s: float = 0.0
    """Generation requests wait this long before answering (a slow upstream)."""
    gate: threading.Event | None = None
    """When set to an unset Event, streams pause after their first chunk until it is set."""
    received: list[dict[str, Any]] = field(default_factory=list)
    """Generation requests as received: path, headers, body."""
    stopping: bool = False
    waiting: int = 0
    """What /metrics reports as `vllm:num_requests_waiting` (split over two engines)."""


def _error(state: FakeVllmState, message: str, kind: str, status: int) -> Response[Any]:
    info = {"message": message, "type": kind, "param": None, "code": status}
    body = {"object": "error", **info} if state.legacy_errors else {"error": info}
    return Response(body, status_code=status)


def _text(message: str) -> Response[bytes]:
    # vLLM answers `Response(status_code=200, content=message)`: no media type of its own.
    return Response(message.encode(), status_code=200, media_type="text/plain")


async def _wait_until(done: Callable[[], bool], timeout_s: float) -> None:
    """Poll `done` (state shared with the test's thread) until it holds or `timeout_s` passes."""
    for _ in range(math.ceil(timeout_s / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)


async def _hold(state: FakeVllmState, gate: threading.Event) -> None:
    await _wait_until(lambda: gate.is_set() or state.stopping, 60.0)


async def _json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    body = msgspec.json.decode(await request.body())
    return body if isinstance(body, dict) else {}


def create_app(state: FakeVllmState) -> Litestar:  # noqa: C901 - one closure per route
    @get("/health", sync_to_thread=False)
    def health() -> Response[bytes]:
        return Response(b"", status_code=200)

    @get("/v1/models", sync_to_thread=False)
    def models() -> dict[str, Any]:
        created = int(time.time())
        cards = [
            {
                "id": state.base_model,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": state.base_root,
                "parent": None,
                "max_model_len": 2048,
                "permission": [{"object": "model_permission"}],
            }
        ]
        cards += [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": path,
                "parent": state.base_model,
                "max_model_len": None,
                "permission": [{"object": "model_permission"}],
            }
            for name, path in state.loras.items()
        ]
        return {"object": "list", "data": cards}

    @post("/v1/load_lora_adapter", status_code=200)
    async def load_lora_adapter(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await _json(request)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(
                state, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400
            )
        if name in state.loras:
            return _error(
                state,
                f"The lora adapter '{name}' has already been loaded. If you want to load the "
                "adapter in place, set 'load_inplace' to True.",
                "InvalidUserInput",
                400,
            )
        if not (Path(path) / "adapter_config.json").is_file():
            return _error(
                state,
                f"Loading lora {name} failed: No adapter found for {path}",
                "NotFoundError",
                404,
            )
        state.loras[name] = path
        return _text(f"Success: LoRA adapter '{name}' added successfully.")

    @post("/v1/unload_lora_adapter", status_code=200)
    async def unload_lora_adapter(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await _json(request)
        name = body.get("lora_name")
        if not name:
            return _error(
                state,
                "either 'lora_name' and 'lora_int_id' needs to be provided.",
                "InvalidUserInput",
                400,
            )
        if name not in state.loras:
            return _error(
                state, f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404
            )
        del state.loras[name]
        return _text(f"Success: LoRA adapter '{name}' removed successfully.")

    async def generate(request: Request[Any, Any, Any], chat: bool) -> Response[Any]:
        body = await _json(request)
        state.received.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        model = body.get("model")
        if model != state.base_model and model not in state.loras:
            return _error(state, f"The model `{model}` does not exist.", "NotFoundError", 404)
        await _wait_until(lambda: state.stopping, state.delay_s)
        words = WORDS[: max(1, int(body.get("max_tokens") or len(WORDS)))]
        if body.get("stream"):
            return Stream(_events(state, str(model), words, chat), media_type="text/event-stream")
        created = int(time.time())
        usage = {
            "prompt_tokens": 3,
            "completion_tokens": len(words),
            "total_tokens": 3 + len(words),
        }
        text = "".join(words)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return Response(
            {
                "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
        )

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        return await generate(request, chat=True)

    @post("/v1/completions", status_code=200)
    async def completions(request: Request[Any, Any, Any]) -> Response[Any]:
        return await generate(request, chat=False)

    @get("/metrics", sync_to_thread=False)
    def metrics() -> Response[bytes]:
        first = state.waiting // 2
        text = (
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{engine="0",model_name="{state.base_model}"}} {first}.0\n'
            f'vllm:num_requests_waiting{{engine="1",model_name="{state.base_model}"}} '
            f"{state.waiting - first}.0\n"
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{engine="0",model_name="{state.base_model}"}} 1.0\n'
        )
        return Response(text.encode(), media_type="text/plain; version=0.0.4")

    handlers: list[Any] = [health, models, chat_completions, completions, metrics]
    if state.runtime_lora_updating:
        handlers += [load_lora_adapter, unload_lora_adapter]
    return Litestar(route_handlers=handlers, openapi_config=None)


async def _events(
    state: FakeVllmState, model: str, words: tuple[str, ...], chat: bool
) -> AsyncIterator[bytes]:
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    for index, word in enumerate(words):
        last = index == len(words) - 1
        finish = "length" if last else None
        if chat:
            delta = {"role": "assistant", "content": word} if index == 0 else {"content": word}
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": word, "logprobs": None, "finish_reason": finish}
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        if index == 0 and state.gate is not None:
            await _hold(state, state.gate)
    yield b"data: [DONE]\n\n"


class FakeVllm:
    """The fake served by uvicorn in a background thread on 127.0.0.1."""

    def __init__(self, port: int | None = None, **state: Any) -> None:
        self.port = port or free_tcp_port()
        self.state = FakeVllmState(**state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self.state.stopping = False
        config = uvicorn.Config(
            create_app(self.state),
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, name="fake-vllm", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake vLLM did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.state.stopping = True
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def restart(self) -> None:
        """Like a restarted vLLM: same port and base model, no runtime adapters."""
        self.stop()
        self.state.loras.clear()
        self.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="base", help="the served (base) model name")
    parser.add_argument("--fail-at-startup", metavar="MESSAGE", help="print it and exit 1")
    args = parser.parse_args(argv)
    if args.fail_at_startup:
        print("INFO starting the fake vLLM", flush=True)
        print(f"ERROR {args.fail_at_startup}", file=sys.stderr, flush=True)
        sys.exit(1)
    flag = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "0").strip().lower()
    state = FakeVllmState(base_model=args.model, runtime_lora_updating=flag in ("1", "true"))
    print(f"INFO fake vLLM serving {args.model} on {args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_app(state),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
    )


if __name__ == "__main__":
    main()
