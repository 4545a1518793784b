"""The `trivium` command line, run as a user runs it, against real Redis servers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TRIVIUM, run_trivium, trivium_env
from tests.support.tiny_models import build_tiny_base
from trivium.common.redis_server import EmbeddedRedis, RedisServerProcess, free_tcp_port

TEMPLATE = """---
description: a test template
variables: [ticket]
---
Ticket: {{ ticket }}
Label:
"""


@pytest.fixture
def env(tmp_path: Path, redis_server: RedisServerProcess) -> dict[str, str]:
    return trivium_env(tmp_path, redis_server.url)


def write(tmp_path: Path, text: str, name: str = "triage.j2") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_help_reads_well() -> None:
    result = run_trivium({}, "--help")
    assert result.returncode == 0
    for group in ("templates", "gateway", "retriever", "model", "up"):
        assert group in result.stdout
    sub = run_trivium({}, "templates", "publish", "--help")
    assert "variables: [question, passages]" in sub.stdout


def test_publish_promote_render_rollback_history_diff(tmp_path: Path, env: dict[str, str]) -> None:
    first = run_trivium(
        env, "templates", "publish", str(write(tmp_path, TEMPLATE)), "--name", "triage"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("published triage@1 sha256:")
    again = run_trivium(
        env, "templates", "publish", str(write(tmp_path, TEMPLATE)), "--name", "triage"
    )
    assert again.stdout.startswith("unchanged, already triage@1")
    v2 = write(tmp_path, TEMPLATE.replace("Label:", "Queue:"), "v2.j2")
    second = run_trivium(
        env, "templates", "publish", str(v2), "--name", "triage", "--promote", "canary"
    )
    assert "published triage@2" in second.stdout
    assert "triage@canary: - -> 2" in second.stdout

    assert run_trivium(env, "templates", "promote", "triage", "1", "--expect", "0").returncode == 0
    moved = run_trivium(
        env, "templates", "promote", "triage", "2", "--expect", "1", "--actor", "pm"
    )
    assert moved.stdout.strip() == "triage@production: 1 -> 2"

    rendered = run_trivium(env, "templates", "render", "triage", "--var", "ticket=refund please")
    assert rendered.stdout == "Ticket: refund please\nQueue:\n"

    rolled = run_trivium(env, "templates", "rollback", "triage")
    assert rolled.stdout.strip() == "triage@production: 2 -> 1 (rolled back)"
    shown = run_trivium(env, "templates", "show", "triage", "--json")
    assert json.loads(shown.stdout)["version"] == 1

    history = json.loads(run_trivium(env, "templates", "history", "triage", "--json").stdout)
    assert [e["action"] for e in history] == [
        "publish",
        "publish",
        "promote",
        "promote",
        "promote",
        "rollback",
    ]
    assert history[4]["actor"] == "pm"
    text_history = run_trivium(env, "templates", "history", "triage", "--limit", "1").stdout
    assert "rollback" in text_history
    assert "production: 2 -> 1" in text_history

    diff = run_trivium(env, "templates", "diff", "triage", "1", "canary").stdout
    assert "-Label:\n+Queue:" in diff
    listing = run_trivium(env, "templates", "show").stdout
    assert "triage" in listing
    assert "canary=2" in listing
    assert "production=1" in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("templates", "show", "a@@b"), "malformed reference 'a@@b'"),
        (("templates", "show", "missing"), "no template named 'missing'"),
        (("templates", "rollback", "missing"), "no template named 'missing'"),
        (("templates", "render", "x", "--var", "novalue"), "--var expects KEY=VALUE"),
    ],
)
def test_bad_input_is_one_clear_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = run_trivium(env, *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_publish_rejects_bad_templates(tmp_path: Path, env: dict[str, str]) -> None:
    undeclared = write(tmp_path, "---\nvariables: [a]\n---\n{{ a }} {{ b }}\n")
    result = run_trivium(env, "templates", "publish", str(undeclared), "--name", "bad")
    assert result.returncode == 1
    assert "undeclared variable(s): b" in result.stderr
    assert "[metadata.variables]" in result.stderr
    broken = write(tmp_path, "{% if %}", "broken.j2")
    result = run_trivium(env, "templates", "publish", str(broken), "--name", "bad")
    assert result.returncode == 1
    assert "does not compile" in result.stderr
    big = write(tmp_path, "x" * 70_000, "big.j2")
    result = run_trivium(env, "templates", "publish", str(big), "--name", "bad")
    assert result.returncode == 1
    assert "limit is 65536" in result.stderr


def test_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    env = trivium_env(tmp_path, "redis://127.0.0.1:1/0")
    result = run_trivium(env, "templates", "show")
    assert result.returncode == 1
    assert "registry store unreachable" in result.stderr


def test_config_file_and_environment(tmp_path: Path) -> None:
    config = write(
        tmp_path, "gateway:\n  port: 9123\nregistry:\n  max_body_bytes: 10\n", "trivium.yaml"
    )
    env = trivium_env(tmp_path, None, TRIVIUM_GATEWAY__HOST="0.0.0.0")
    shown = json.loads(run_trivium(env, "--config", str(config), "gateway", "config").stdout)
    assert shown["gateway"]["port"] == 9123
    assert shown["gateway"]["host"] == "0.0.0.0"
    assert shown["registry"]["max_body_bytes"] == 10
    typo = write(tmp_path, "gateway:\n  prot: 9123\n", "typo.yaml")
    result = run_trivium(env, "--config", str(typo), "gateway", "config")
    assert result.returncode == 1
    assert "invalid configuration: gateway.prot: Extra inputs are not permitted" in result.stderr
    not_yaml = write(tmp_path, "gateway: [unclosed\n", "broken.yaml")
    result = run_trivium(env, "--config", str(not_yaml), "model", "config")
    assert result.returncode == 1
    assert "is not valid YAML" in result.stderr


def test_embedded_default_persists_and_shuts_down(tmp_path: Path) -> None:
    """No Redis URL: the CLI runs the embedded server under data_dir and stops it after."""
    env = trivium_env(tmp_path, None)
    published = run_trivium(
        env, "templates", "publish", str(write(tmp_path, TEMPLATE)), "--name", "local"
    )
    assert published.returncode == 0, published.stderr
    embedded = EmbeddedRedis(tmp_path)
    assert (embedded.data_dir / "appendonly.aof").is_file()
    assert not embedded._server.ping(), "the CLI left the embedded Redis running"
    # A second process starts the server again and finds the version on disk.
    shown = run_trivium(env, "templates", "show", "local@1", "--json")
    assert json.loads(shown.stdout)["body"] == "Ticket: {{ ticket }}\nLabel:\n"


def test_finetune_rejects_a_bad_dataset_naming_the_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    base = build_tiny_base(tmp_path / "base")
    data = write(tmp_path, '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n', "bad.jsonl")
    result = run_trivium(
        env, "model", "finetune", "--base", str(base), "--data", str(data), "--name", "x"
    )
    assert result.returncode == 1
    assert "line 2" in result.stderr
    assert "completion" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_runs_the_stack_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port, retriever_port = free_tcp_port(), free_tcp_port()
    env = trivium_env(
        tmp_path,
        None,
        TRIVIUM_GATEWAY__PORT=str(port),
        TRIVIUM_RETRIEVER__PORT=str(retriever_port),
        TRIVIUM_RETRIEVER__EMBEDDING__TORCH_THREADS="1",
        TRIVIUM_UP__METRICS_PORT=str(free_tcp_port()),
    )
    process = subprocess.Popen(
        [*TRIVIUM, "up", "--skip-model"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and not ready:
            assert process.poll() is None, process.communicate()[1]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready
        templates = httpx.get(f"http://127.0.0.1:{port}/v1/templates").json()
        assert {t["name"] for t in templates} >= {"support-answer", "triage", "copy"}
        retriever = f"http://127.0.0.1:{retriever_port}/v1/collections/docs"
        assert httpx.get(retriever).json()["documents"] >= 2  # README.md and docs/
        hits = httpx.post(f"{retriever}/search", json={"query": "run the tests"}, timeout=10)
        assert hits.json()["hits"][0]["source"] in {"README.md"} | {
            f"docs/{p.name}" for p in Path("docs").iterdir()
        }
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert not EmbeddedRedis(tmp_path)._server.ping(), "up left the embedded Redis running"


def test_up_refuses_a_port_another_process_holds(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = trivium_env(
            tmp_path,
            None,
            TRIVIUM_GATEWAY__PORT=str(port),
            TRIVIUM_UP__METRICS_PORT=str(free_tcp_port()),
        )
        result = run_trivium(env, "up", "--skip-model", "--skip-retriever")
    assert result.returncode == 1, result.stderr
    assert f"in use by another process: gateway.port {port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stack.json").exists()


def test_up_without_the_demo_model_needs_a_model_of_its_own(tmp_path: Path) -> None:
    env = trivium_env(
        tmp_path,
        None,
        TRIVIUM_GATEWAY__PORT=str(free_tcp_port()),
        TRIVIUM_MODEL__PORT=str(free_tcp_port()),
        TRIVIUM_UP__METRICS_PORT=str(free_tcp_port()),
        TRIVIUM_UP__DEMO_MODEL="false",
        TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR=str(tmp_path / "no-model-here"),
    )
    result = run_trivium(env, "up", "--skip-retriever")
    assert result.returncode == 1, result.stderr
    assert "up.demo_model is off" in result.stderr
    assert "model.transformers.base_model_dir" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stack.json").exists()
    assert not EmbeddedRedis(tmp_path).running(), "the failed start left Redis running"
