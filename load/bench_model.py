"""Model-service benchmark: tokens/s and latency at several concurrencies, batching on and off.

Starts `trivium model serve` (transformers engine) once per batching mode on a free port
against a private Redis, then drives it over HTTP with N concurrent clients.

Every request generates exactly --max-tokens tokens (`ignore_eos`, as vLLM's benchmarks do).

    .venv/bin/python load/bench_model.py --base-model-dir var/models/demo-base \\
        [--adapter triage-lora] [--concurrency 1 4 16] [--requests 48] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from trivium.common.redis_server import RedisServerProcess, free_tcp_port

PROMPTS = [
    "My invoice shows a double charge for November, please refund one of them.",
    "The export button crashes the app every time I click it.",
    "I cannot log in after resetting my password.",
    "Could you add dark mode to the dashboard?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_service(
    base: Path, redis_url: str, data_dir: Path, batching: bool
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_tcp_port()
    env = {
        **os.environ,
        "TRIVIUM_DATA_DIR": str(data_dir),
        "TRIVIUM_REDIS__URL": redis_url,
        "TRIVIUM_MODEL__PORT": str(port),
        "TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR": str(base),
        "TRIVIUM_MODEL__TRANSFORMERS__MICRO_BATCHING": "true" if batching else "false",
        "TRIVIUM_MODEL__TRANSFORMERS__MAX_BATCH_SIZE": "16",
        "TRIVIUM_MODEL__TRANSFORMERS__MAX_QUEUE": "256",
        "TRIVIUM_LOG__LEVEL": "WARNING",
    }
    trivium = Path(sys.executable).with_name("trivium")
    process = subprocess.Popen([str(trivium), "model", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("model service did not start")


async def drive(url: str, model: str, concurrency: int, requests: int, max_tokens: int) -> None:
    latencies: list[float] = []
    tokens = 0

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal tokens
        for i in range(worker, requests, concurrency):
            body = {
                "model": model,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "max_tokens": max_tokens,
                "temperature": 0.8,
                "seed": i,
                "ignore_eos": True,
            }
            start = time.perf_counter()
            response = await http.post(f"{url}/v1/completions", json=body)
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)
            tokens += response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=300) as http:
        await http.post(
            f"{url}/v1/completions", json={"model": model, "prompt": "warm", "max_tokens": 4}
        )
        start = time.perf_counter()
        await asyncio.gather(*(client(w, http) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    p50_ms = statistics.median(latencies) * 1000
    p99_ms = percentile(latencies, 0.99) * 1000
    print(
        f"  concurrency {concurrency:>3}: {tokens / elapsed:8.1f} tokens/s  "
        f"{len(latencies) / elapsed:6.2f} req/s  p50 {p50_ms:8.1f} ms  p99 {p99_ms:8.1f} ms  "
        f"({tokens} tokens, {len(latencies)} requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-model-dir", type=Path, default=Path("var/models/demo-base"))
    parser.add_argument("--model", default="base", help="base, or an adapter reference")
    parser.add_argument("--redis-url", help="registry for adapters; default: a private server")
    parser.add_argument(
        "--data-dir", type=Path, help="data_dir (adapter store); default: a temp dir"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    if not (args.base_model_dir / "config.json").is_file():
        sys.exit(f"no model at {args.base_model_dir}: run `trivium model init-demo` first")
    with tempfile.TemporaryDirectory() as tmp:
        redis = None
        redis_url = args.redis_url
        if redis_url is None:
            redis = RedisServerProcess(Path(tmp) / "redis", port=free_tcp_port(), persist=False)
            redis.start()
            redis_url = redis.url
        try:
            for batching in (True, False):
                print(
                    f"micro-batching {'on' if batching else 'off'} (model {args.model}, "
                    f"max_tokens {args.max_tokens}, {os.cpu_count()} cores)"
                )
                process, url = start_service(
                    args.base_model_dir, redis_url, args.data_dir or Path(tmp), batching
                )
                try:
                    for concurrency in args.concurrency:
                        asyncio.run(
                            drive(url, args.model, concurrency, args.requests, args.max_tokens)
                        )
                finally:
                    process.terminate()
                    process.wait(30)
        finally:
            if redis is not None:
                redis.stop()


if __name__ == "__main__":
    main()
