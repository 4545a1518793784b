"""The README's CLI walk-through, run exactly as the README shows it, against a private Redis.

The commands are read from the README between `<!-- walkthrough:start -->` and
`<!-- walkthrough:end -->`, so the README and this test cannot drift apart."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.e2e.conftest import TRIVIUM, trivium_env
from trivium.common.redis_server import RedisServerProcess

ROOT = Path(__file__).resolve().parents[2]
ACTIVATE = ". .venv/bin/activate"


def walkthrough_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- walkthrough:start -->\s*```sh\n(.*?)```\s*<!-- walkthrough:end -->", readme, re.S
    )
    assert found, "README.md lost its walkthrough markers"
    joined = found.group(1).replace("\\\n", " ")  # shell line continuations
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_every_walkthrough_command_runs_as_written(
    tmp_path: Path, redis_server: RedisServerProcess
) -> None:
    env = trivium_env(tmp_path, redis_server.url)
    commands = walkthrough_commands()
    assert commands[0] == ACTIVATE
    outputs: dict[str, str] = {}
    for command in commands[1:]:
        argv = shlex.split(command, comments=True)
        assert argv[0] == "trivium", f"the walk-through runs only trivium commands: {command}"
        result = subprocess.run(
            [*TRIVIUM, *argv[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"`{command}` failed:\n{result.stderr}"
        outputs[" ".join(argv[1:3])] = result.stdout
    assert "Question: What is RRF?" in outputs["templates render"]
    assert "[1] RRF fuses ranked lists" in outputs["templates render"]
    assert outputs["templates rollback"].strip() == "qa@production: 2 -> 1 (rolled back)"
    assert "+Answer from these passages only" in outputs["templates diff"]  # 1 -> production 2
    assert "rollback" in outputs["templates history"]
