"""Gateway benchmark: the cost of the hop (added latency, CPU per request, peak RSS) and a soak.

    .venv/bin/python load/bench_gateway.py overhead [--concurrency 1,8,32] [--requests 3000]
        [--warmup 300] [--delay-ms 20] [--repeat 2] [--path invoke|openai]
        [--log-level WARNING|INFO] [--profile-gateway OUT.prof] [--key]
    .venv/bin/python load/bench_gateway.py soak [--requests 100000] [--concurrency 16]

`overhead` starts, each in its own process: a fast OpenAI-compatible upstream with a fixed
delay, a bare pass-through proxy (aiohttp server + one pooled aiohttp ClientSession, the
body forwarded as bytes) and the real gateway (`trivium gateway serve`, embedded Redis, one
`prompt` feature whose template is published through the admin API). The load generator
(aiohttp client, C closed-loop workers) runs here and calls, in rotating order, the upstream
directly, the proxy and the gateway. Per cell it prints latency percentiles, the latency
added over the direct call of the same round, the server's CPU per request (utime+stime
from /proc over the measured phase) and its peak RSS (VmHWM). The gateway's embedded Redis
is a separate process; its CPU per request is shown on its own.

With `--key` the gateway runs with caller auth on (`auth.mode: keys`) and every gateway
request carries an API key with generous limits and budgets (rpm, tpm, USD per day and
month), so each request pays for authentication and one limiter script; the run ends with
the Redis commands the gateway sends per request, from MONITOR over 500 sequential requests
(limiter scripts, key reads, the rest; commands inside scripts are not round trips).
Without it the gateway runs in `auth.mode: open`. Compare the gateway's cpu/req of the two
runs for the cost of auth + limits.

`soak` drives N requests through the gateway (upstream delay 0-1 ms) and reports the
gateway's VmRSS after warm-up, at every 10 %, and at the end.

Everything runs on the same machine as the load generator: on 2 cores the client's own CPU
competes with the servers', as it would for any sidecar/proxy measured this way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from rich.progress import MofNCompleteColumn, Progress

from trivium.common.redis_server import free_tcp_port

TRIVIUM = Path(sys.executable).with_name("trivium")
ADMIN_TOKEN = "bench-admin"
FEATURE = "bench"
MODEL = "bench-model"
TEMPLATE = ("Answer briefly: {{ question }}", ["question"])
QUESTION = "How do I reset my password after the emailed link expired?"
TARGETS = ("direct", "proxy", "gateway")
TARGET_CPU_RATIO = 1.3
"""Gateway CPU per request over the floor's (the bare pass-through proxy), at every concurrency."""
TARGET_THROUGHPUT_SHARE = 0.9
"""Gateway throughput over the floor's, at the highest concurrency run."""
TARGET_ADDED_P99_RATIO = 2.0
"""Gateway added p99 over the floor's added p99, at the highest concurrency run."""
TARGET_RSS_MIB = 80.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


# -- /proc ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status, e.g. VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def mib(kib: int) -> float:
    return kib / 1024


# -- the child servers (run as `bench_gateway.py _upstream|_proxy`) --------------------------


def run_upstream(port: int, delay_ms: float, jitter_ms: float) -> None:
    """An OpenAI-compatible chat endpoint: decode, wait, answer with an echo and usage."""

    async def chat(request: web.Request) -> web.Response:
        body = _decode(await request.read())
        delay = delay_ms + (random.random() * jitter_ms if jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        messages = body.get("messages") or [{}]
        prompt = str(messages[-1].get("content", ""))
        text = "echo: " + prompt[:200]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(text.split())
        completion = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return web.Response(body=_encode(completion), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", _ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


def run_proxy(port: int, upstream: str) -> None:
    """A bare pass-through proxy: the body forwarded as bytes over one pooled ClientSession."""
    target = upstream.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}

    async def open_session(app: web.Application) -> Any:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        app["session"] = session
        yield
        await session.close()

    async def forward(request: web.Request) -> web.Response:
        session: aiohttp.ClientSession = request.app["session"]
        async with session.post(target, data=await request.read(), headers=headers) as upstream:
            raw = await upstream.read()
            return web.Response(body=raw, status=upstream.status, content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(open_session)
    app.router.add_post("/v1/chat/completions", forward)
    app.router.add_get("/healthz", _ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# -- starting and stopping ------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def children_cpu(self) -> float:
        return sum(cpu_seconds(child) for child in children(self.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)  # its own session: it and its Redis
                self.process.wait()


RUNNING: list[Server] = []
"""Every server started, stopped by `stopping()` however the benchmark ends."""


def spawn(name: str, command: list[str], env: dict[str, str], tmp: Path, url: str) -> Server:
    log_path = tmp / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    server = Server(name, url, process, log_path)
    RUNNING.append(server)
    return server


def wait_healthy(server: Server, path: str = "/healthz", timeout_s: float = 60) -> None:
    async def poll() -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if server.process.poll() is not None:
                    raise RuntimeError(
                        f"{server.name} exited at start-up:\n{server.log_path.read_text()[-3000:]}"
                    )
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(server.url + path, timeout=aiohttp.ClientTimeout(1)) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{server.name} not healthy:\n{server.log_path.read_text()[-3000:]}")

    asyncio.run(poll())


def start_upstream(tmp: Path, delay_ms: float, jitter_ms: float = 0.0) -> Server:
    port = free_tcp_port()
    command = [sys.executable, __file__, "_upstream", "--port", str(port)]
    command += ["--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms)]
    server = spawn("upstream", command, dict(os.environ), tmp, f"http://127.0.0.1:{port}")
    wait_healthy(server)
    return server


def start_proxy(tmp: Path, upstream: Server) -> Server:
    port = free_tcp_port()
    command = [sys.executable, __file__, "_proxy", "--port", str(port)]
    command += ["--upstream", upstream.url + "/v1"]
    server = spawn("proxy", command, dict(os.environ), tmp, f"http://127.0.0.1:{port}")
    wait_healthy(server)
    return server


PROFILED_GATEWAY = """
import cProfile, sys, time
from trivium.cli.main import cli
out = sys.argv[1]
sys.argv = ["trivium", "gateway", "serve"]
profiler = cProfile.Profile(time.thread_time)  # CPU time of the event loop's thread
try:
    profiler.runcall(cli)
except SystemExit:
    pass
finally:
    profiler.dump_stats(out)
"""
"""The gateway under cProfile, timing CPU rather than wall time: on a shared machine the
wall clock charges other processes' time slices to whatever call was running."""


def start_gateway(
    tmp: Path,
    upstream: Server,
    log_level: str,
    profile: Path | None = None,
    with_key: bool = False,
) -> tuple[Server, str | None]:
    """`trivium gateway serve` on an embedded Redis, one feature, its template published;
    with `with_key`, auth on and an API key for the load (returned)."""
    port = free_tcp_port()
    policy = tmp / "policy.yaml"
    policy.write_text(
        f"""
version: 1
upstreams:
  fast:
    url: "{upstream.url}/v1"
    model: {MODEL}
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
features:
  {FEATURE}:
    route: prompt
    template: {FEATURE}@production
    upstream: fast
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIVIUM_")}
    env.update(
        TRIVIUM_DATA_DIR=str(tmp / "gateway-data"),
        TRIVIUM_REGISTRY__KEY_PREFIX=f"bench{uuid.uuid4().hex[:8]}",
        TRIVIUM_GATEWAY__PORT=str(port),
        TRIVIUM_GATEWAY__POLICY_FILE=str(policy),
        TRIVIUM_GATEWAY__ADMIN_TOKENS=json.dumps({"bench": ADMIN_TOKEN}),
        TRIVIUM_LOG__LEVEL=log_level,
        TRIVIUM_GATEWAY__AUTH__MODE="keys" if with_key else "open",
    )
    if profile is None:
        command = [str(TRIVIUM), "gateway", "serve"]
    else:
        command = [sys.executable, "-c", PROFILED_GATEWAY, str(profile)]
    server = spawn("gateway", command, env, tmp, f"http://127.0.0.1:{port}")
    wait_healthy(server, "/readyz")
    asyncio.run(publish_template(server.url))
    key = asyncio.run(create_key(server.url)) if with_key else None
    return server, key


async def create_key(base: str) -> str:
    """A key whose limits the benchmark never reaches: every request runs the limiter script."""
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    spec = {
        "name": "bench",
        "owner": "bench",
        "features": [FEATURE],
        "rpm": 10_000_000,
        "tpm": 1_000_000_000,
        "budget_usd_day": 1e6,
        "budget_usd_month": 1e7,
    }
    async with (
        aiohttp.ClientSession(base_url=base, headers=headers) as http,
        http.post("/v1/keys", json=spec) as r,
    ):
        if r.status != 201:
            raise RuntimeError(f"creating the key: {r.status} {await r.text()}")
        key: str = (await r.json())["key"]
        return key


async def publish_template(base: str) -> None:
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    body, variables = TEMPLATE
    async with aiohttp.ClientSession(base_url=base, headers=headers) as http:
        version = {"body": body, "metadata": {"variables": variables}}
        async with http.post(f"/v1/templates/{FEATURE}/versions", json=version) as r:
            if r.status != 201:
                raise RuntimeError(f"publishing the template: {r.status} {await r.text()}")
        label = {"version": 1}
        async with http.put(f"/v1/templates/{FEATURE}/labels/production", json=label) as r:
            if r.status != 200:
                raise RuntimeError(f"promoting the template: {r.status} {await r.text()}")


def redis_top_level_commands(
    data_dir: Path, request: Request, n: int
) -> tuple[dict[str, int], float]:
    """What the gateway itself sends to Redis for `n` sequential requests, from MONITOR:
    commands run inside Lua scripts (`lua` clients) are left out, since they cost no round
    trip. Returns the commands by name and the seconds the sample took."""
    import threading

    import redis as sync_redis

    from trivium.common.redis_server import EmbeddedRedis

    url = EmbeddedRedis(data_dir).url
    stop = "bench-monitor-stop"
    seen: dict[str, int] = {}
    listening = threading.Event()

    def listen() -> None:
        client = sync_redis.Redis.from_url(url)
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            listening.set()
            for entry in monitor.listen():
                command = str(entry["command"])
                if stop in command:
                    break
                if entry.get("client_type") == "lua":
                    continue
                name = command.split(" ", 1)[0].upper()
                seen[name] = seen.get(name, 0) + 1
        client.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    listening.wait(5)
    time.sleep(0.2)

    async def sample() -> float:
        async with client(1) as http:
            load = await drive(http, request, n, 1)
        return load.elapsed_s

    elapsed = asyncio.run(sample())
    time.sleep(0.2)
    poke = sync_redis.Redis.from_url(url)
    poke.echo(stop)
    poke.close()
    thread.join(10)
    seen.pop("ECHO", None)
    return seen, elapsed


def report_round_trips(commands: dict[str, int], requests: int, seconds: float) -> None:
    """Round trips to Redis per gateway request: the limiter's script, key reads, the rest."""
    scripts = commands.get("EVALSHA", 0) + commands.get("EVAL", 0)
    reads = commands.get("GET", 0)
    rest = {k: v for k, v in commands.items() if k not in ("EVALSHA", "EVAL", "GET")}
    print(
        f"\nRedis commands the gateway sent for {requests} sequential requests ({seconds:.1f} s; "
        f"MONITOR, commands inside scripts left out): limiter scripts "
        f"{scripts / requests:.3f}/request, key reads {reads / requests:.3f}/request, "
        f"others {sum(rest.values())} in all {dict(sorted(rest.items()))} (the stats "
        "flush and the settle flush, each pipelined, at most once per interval)"
    )


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Stop every server on the way out, Ctrl-C and SIGTERM included."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        while RUNNING:
            RUNNING.pop().stop()
        signal.signal(signal.SIGTERM, previous)


# -- the load generator ---------------------------------------------------------------------


@dataclass
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


def requests_for(
    servers: dict[str, Server], path: str, key: str | None = None
) -> dict[str, Request]:
    prompt = TEMPLATE[0].replace("{{ question }}", QUESTION)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 256}
    direct = _encode(chat)
    if path == "invoke":
        gateway = Request(
            f"{servers['gateway'].url}/v1/features/{FEATURE}/invoke",
            _encode({"input": {"question": QUESTION}}),
        )
    else:  # the OpenAI route: `model` names the feature, `input` fills the template
        body = {**chat, "model": FEATURE, "input": {"question": QUESTION}}
        gateway = Request(f"{servers['gateway'].url}/v1/chat/completions", _encode(body))
    if key is not None:
        gateway.headers = {**gateway.headers, "Authorization": f"Bearer {key}"}
    return {
        "direct": Request(f"{servers['upstream'].url}/v1/chat/completions", direct),
        "proxy": Request(f"{servers['proxy'].url}/v1/chat/completions", direct),
        "gateway": gateway,
    }


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    elapsed_s: float = 0.0


async def drive(
    http: aiohttp.ClientSession,
    request: Request,
    n: int,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> Load:
    """`n` requests from `concurrency` closed-loop workers."""
    load = Load()
    remaining = n
    headers = request.headers

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            try:
                async with http.post(request.url, data=request.body, headers=headers) as r:
                    raw = await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError as exc:
                ok, raw = False, repr(exc).encode()
            load.latencies.append(time.perf_counter() - began)
            if not ok:
                load.errors += 1
                load.first_error = load.first_error or raw[:300].decode(errors="replace")
            if on_done is not None:
                on_done()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.elapsed_s = time.perf_counter() - began
    return load


def client(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- overhead -------------------------------------------------------------------------------


@dataclass
class Cell:
    round: int
    target: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50: float
    p90: float
    p99: float
    max: float
    cpu_ms: float | None = None
    redis_ms: float | None = None
    hwm_mib: float | None = None
    added_p50: float | None = None
    added_p99: float | None = None


async def measure(
    server: Server | None,
    target: str,
    request: Request,
    concurrency: int,
    requests: int,
    warmup: int,
    round_: int,
) -> Cell:
    async with client(concurrency) as http:
        if warmup:
            await drive(http, request, warmup, concurrency)
        cpu0 = server.cpu() if server else 0.0
        aux0 = server.children_cpu() if server else 0.0
        load = await drive(http, request, requests, concurrency)
        cpu1 = server.cpu() if server else 0.0
        aux1 = server.children_cpu() if server else 0.0
    if load.errors:
        print(f"  !! {target} c={concurrency}: {load.errors} errors, first: {load.first_error}")
    ms = [x * 1000 for x in load.latencies]
    cell = Cell(
        round=round_,
        target=target,
        concurrency=concurrency,
        requests=len(ms),
        errors=load.errors,
        rps=len(ms) / load.elapsed_s,
        p50=statistics.median(ms),
        p90=percentile(ms, 0.90),
        p99=percentile(ms, 0.99),
        max=max(ms),
    )
    if server is not None:
        cell.cpu_ms = (cpu1 - cpu0) * 1000 / len(ms)
        cell.hwm_mib = mib(status_kib(server.pid, "VmHWM"))
        if target == "gateway":
            cell.redis_ms = (aux1 - aux0) * 1000 / len(ms)
    return cell


HEADER = (
    f"{'round':>5} {'target':<8} {'conc':>4} {'reqs':>6} {'err':>4} {'rps':>7} "
    f"{'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'+p50':>7} {'+p99':>7} "
    f"{'cpu/req':>8} {'redis/req':>9} {'peakRSS':>8}"
)


def _opt(value: float | None, width: int, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def row(cell: Cell, label: str | None = None) -> str:
    return (
        f"{label or str(cell.round):>5} {cell.target:<8} {cell.concurrency:>4} "
        f"{cell.requests:>6} {cell.errors:>4} {cell.rps:>7.0f} "
        f"{cell.p50:>7.2f} {cell.p90:>7.2f} {cell.p99:>7.2f} {cell.max:>7.2f} "
        f"{_opt(cell.added_p50, 7)} {_opt(cell.added_p99, 7)} "
        f"{_opt(cell.cpu_ms, 8, 3)} {_opt(cell.redis_ms, 9, 3)} {_opt(cell.hwm_mib, 8, 1)}"
    )


def median_cell(cells: list[Cell]) -> Cell:
    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    first = cells[0]
    return Cell(
        round=0,
        target=first.target,
        concurrency=first.concurrency,
        requests=sum(c.requests for c in cells),
        errors=sum(c.errors for c in cells),
        rps=statistics.median(c.rps for c in cells),
        p50=statistics.median(c.p50 for c in cells),
        p90=statistics.median(c.p90 for c in cells),
        p99=statistics.median(c.p99 for c in cells),
        max=max(c.max for c in cells),
        cpu_ms=med([c.cpu_ms for c in cells]),
        redis_ms=med([c.redis_ms for c in cells]),
        hwm_mib=max((c.hwm_mib for c in cells if c.hwm_mib is not None), default=None),
        added_p50=med([c.added_p50 for c in cells]),
        added_p99=med([c.added_p99 for c in cells]),
    )


def overhead(args: argparse.Namespace) -> None:
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    print(
        f"gateway overhead: upstream delay {args.delay_ms} ms, {args.requests} measured + "
        f"{args.warmup} warm-up requests per cell, concurrency {concurrencies}, "
        f"{args.repeat} round(s), gateway path {args.path}, gateway log level {args.log_level}, "
        f"{os.cpu_count()} CPUs"
    )
    if args.profile_gateway:
        print(f"  (gateway under cProfile -> {args.profile_gateway}: its numbers are NOT valid)")
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name, stopping():
        tmp = Path(tmp_name)
        upstream = start_upstream(tmp, args.delay_ms)
        proxy = start_proxy(tmp, upstream)
        profile = Path(args.profile_gateway).resolve() if args.profile_gateway else None
        gateway, key = start_gateway(tmp, upstream, args.log_level, profile, args.key)
        by_name = {"upstream": upstream, "proxy": proxy, "gateway": gateway}
        calls = requests_for(by_name, args.path, key)
        measured: dict[str, Server | None] = {"direct": None, "proxy": proxy, "gateway": gateway}
        print(
            "latencies in ms; +p50/+p99: added over `direct` in the same round and concurrency; "
            "cpu/req, redis/req: server CPU ms per request; peakRSS: VmHWM MiB\n"
        )
        print(HEADER)
        cells: list[Cell] = []
        for round_ in range(1, args.repeat + 1):
            for concurrency in concurrencies:
                shift = (round_ - 1) % len(TARGETS)
                order = TARGETS[shift:] + TARGETS[:shift]  # rotate: no target always goes first
                done: dict[str, Cell] = {}
                for target in order:
                    done[target] = asyncio.run(
                        measure(
                            measured[target],
                            target,
                            calls[target],
                            concurrency,
                            args.requests,
                            args.warmup,
                            round_,
                        )
                    )
                direct = done["direct"]
                for target in TARGETS:
                    cell = done[target]
                    if target != "direct":
                        cell.added_p50 = cell.p50 - direct.p50
                        cell.added_p99 = cell.p99 - direct.p99
                    cells.append(cell)
                    print(row(cell), flush=True)
        gateway_rss = mib(status_kib(gateway.pid, "VmRSS"))
        sampled = 500
        commands, seconds = redis_top_level_commands(
            tmp / "gateway-data", calls["gateway"], sampled
        )
    report_round_trips(commands, sampled, seconds)
    summary = {
        (c, t): median_cell([x for x in cells if x.concurrency == c and x.target == t])
        for c in concurrencies
        for t in TARGETS
    }
    if args.repeat > 1:
        print(f"\nmedian over {args.repeat} rounds (max: the worst of all; reqs: the total)")
        print(HEADER)
        for (_, _), cell in summary.items():
            print(row(cell, "med"))
    print(f"\ngateway VmRSS at the end: {gateway_rss:.1f} MiB")
    verdict(summary, concurrencies, gateway_rss)


def verdict(summary: dict[tuple[int, str], Cell], concurrencies: list[int], rss: float) -> None:
    checks: list[str] = []
    missed = False

    def check(label: str, value: float | None, limit: float, unit: str, at_least: bool) -> None:
        nonlocal missed
        if value is None:
            return
        ok = value >= limit if at_least else value <= limit
        missed |= not ok
        sign = ">=" if at_least else "<="
        verdict = "PASS" if ok else "MISS"
        checks.append(f"{label} {value:.2f}{unit} ({sign} {limit:g}{unit}) {verdict}")

    for concurrency in concurrencies:
        gateway, proxy = summary[(concurrency, "gateway")], summary[(concurrency, "proxy")]
        ratio = None
        if gateway.cpu_ms is not None and proxy.cpu_ms:
            ratio = gateway.cpu_ms / proxy.cpu_ms
        check(f"c={concurrency} CPU/req gateway/floor", ratio, TARGET_CPU_RATIO, "x", False)
    top = max(concurrencies)
    gateway, proxy = summary[(top, "gateway")], summary[(top, "proxy")]
    share = gateway.rps / proxy.rps if proxy.rps else None
    check(f"c={top} throughput gateway/floor", share, TARGET_THROUGHPUT_SHARE, "", True)
    p99_ratio = None
    if gateway.added_p99 is not None and proxy.added_p99 is not None and proxy.added_p99 > 0:
        p99_ratio = gateway.added_p99 / proxy.added_p99
    check(f"c={top} added p99 gateway/floor", p99_ratio, TARGET_ADDED_P99_RATIO, "x", False)
    check("gateway RSS", rss, TARGET_RSS_MIB, " MiB", False)
    print("targets: " + "; ".join(checks))
    print(f"overall: {'MISS' if missed else 'PASS'}")


# -- soak -----------------------------------------------------------------------------------


def soak(args: argparse.Namespace) -> None:
    print(
        f"gateway soak: {args.requests} requests at concurrency {args.concurrency} after "
        f"{args.warmup} warm-up, upstream delay {args.delay_ms}-{args.delay_ms + args.jitter_ms}"
        f" ms, gateway path {args.path}, log level {args.log_level}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name, stopping():
        tmp = Path(tmp_name)
        upstream = start_upstream(tmp, args.delay_ms, args.jitter_ms)
        gateway, _ = start_gateway(tmp, upstream, args.log_level)
        calls = requests_for(
            {"upstream": upstream, "proxy": upstream, "gateway": gateway}, args.path
        )
        request = calls["gateway"]
        rss_start = mib(status_kib(gateway.pid, "VmRSS"))
        samples: list[tuple[int, float, float, float]] = []
        errors = 0

        async def run() -> None:
            nonlocal errors
            async with client(args.concurrency) as http:
                await drive(http, request, args.warmup, args.concurrency)
                samples.append((0, mib(status_kib(gateway.pid, "VmRSS")), 0.0, 0.0))
                step = max(1, args.requests // 10)
                done = 0
                with Progress(
                    *Progress.get_default_columns(), MofNCompleteColumn(), transient=True
                ) as progress:
                    task = progress.add_task("soak", total=args.requests)

                    def tick() -> None:
                        progress.advance(task)

                    while done < args.requests:
                        n = min(step, args.requests - done)
                        cpu0 = gateway.cpu()
                        load = await drive(http, request, n, args.concurrency, tick)
                        cpu1 = gateway.cpu()
                        errors += load.errors
                        done += n
                        rss = mib(status_kib(gateway.pid, "VmRSS"))
                        samples.append((done, rss, n / load.elapsed_s, (cpu1 - cpu0) * 1000 / n))

        began = time.perf_counter()
        asyncio.run(run())
        elapsed = time.perf_counter() - began
        hwm = mib(status_kib(gateway.pid, "VmHWM"))
    print(f"\ngateway VmRSS at start-up (before warm-up): {rss_start:.1f} MiB")
    print(f"{'requests':>9} {'VmRSS MiB':>10} {'delta MiB':>10} {'rps':>7} {'cpu/req ms':>11}")
    base = samples[0][1]
    for done, rss, rps, cpu in samples:
        label = "warm" if done == 0 else str(done)
        rps_text = f"{rps:>7.0f}" if done else f"{'-':>7}"
        cpu_text = f"{cpu:>11.3f}" if done else f"{'-':>11}"
        print(f"{label:>9} {rss:>10.1f} {rss - base:>+10.2f} {rps_text} {cpu_text}")
    growth = samples[-1][1] - base
    half = samples[len(samples) // 2]
    late = samples[-1][1] - half[1]
    late_n = samples[-1][0] - half[0]
    print(
        f"\n{args.requests} requests in {elapsed:.0f} s, {errors} errors; VmHWM {hwm:.1f} MiB; "
        f"growth after warm-up {growth:+.2f} MiB ({growth / args.requests * 10_000:+.3f} MiB "
        f"per 10k requests); second half alone {late:+.2f} MiB "
        f"({late / max(late_n, 1) * 10_000:+.3f} MiB per 10k)"
    )


# -- command line ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    over = commands.add_parser("overhead", help="added latency, CPU/request, peak RSS")
    over.add_argument("--concurrency", default="1,8,32", help="comma-separated")
    over.add_argument("--requests", type=int, default=3000, help="measured, per cell")
    over.add_argument("--warmup", type=int, default=300, help="per cell, not measured")
    over.add_argument("--delay-ms", type=float, default=20.0, help="the upstream's fixed delay")
    over.add_argument("--repeat", type=int, default=2, help="rounds, target order rotated")
    over.add_argument("--path", choices=("invoke", "openai"), default="invoke")
    over.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING"), default="WARNING")
    over.add_argument("--profile-gateway", metavar="OUT", help="run the gateway under cProfile")
    over.add_argument(
        "--key",
        action="store_true",
        help="auth on: every gateway request carries an API key with generous limits",
    )

    soaking = commands.add_parser("soak", help="gateway RSS over many requests")
    soaking.add_argument("--requests", type=int, default=100_000)
    soaking.add_argument("--concurrency", type=int, default=16)
    soaking.add_argument("--warmup", type=int, default=2000)
    soaking.add_argument("--delay-ms", type=float, default=0.0)
    soaking.add_argument("--jitter-ms", type=float, default=1.0, help="uniform extra delay")
    soaking.add_argument("--path", choices=("invoke", "openai"), default="invoke")
    soaking.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING"), default="WARNING")

    up = commands.add_parser("_upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--delay-ms", type=float, default=0.0)
    up.add_argument("--jitter-ms", type=float, default=0.0)
    proxy = commands.add_parser("_proxy")
    proxy.add_argument("--port", type=int, required=True)
    proxy.add_argument("--upstream", required=True)

    args = parser.parse_args()
    if args.command == "overhead":
        overhead(args)
    elif args.command == "soak":
        soak(args)
    elif args.command == "_upstream":
        run_upstream(args.port, args.delay_ms, args.jitter_ms)
    else:
        run_proxy(args.port, args.upstream)


if __name__ == "__main__":
    main()
