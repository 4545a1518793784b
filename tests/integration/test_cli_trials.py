"""`trivium trial run|list|show` against a gateway over HTTP.

The gateway is `tests/support/trials_gateway.py`, a stand-in for the dataset and trial routes
built on other branches (replace it with the real gateway once merged). `load_scoring` is the
seam to `trivium.trials.scoring`/`summary`, also built elsewhere: these tests point it at the
stand-ins of test_trial_runner.py.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.integration.test_trial_runner import (
    KEY,
    POLICY,
    _answer,
    _rows,
    score_labels,
    summarise,
)
from tests.support.trials_gateway import TrialsGateway
from trivium.cli import trials as trial_cli
from trivium.cli.main import cli


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[TrialsGateway]:
    monkeypatch.setattr(trial_cli, "load_scoring", lambda: (score_labels, summarise))
    with TrialsGateway(
        policy=POLICY, answer=_answer, keys={KEY: ("read", "invoke", "trials")}
    ) as gw:
        gw.publish("triage-eval", _rows(9))
        yield gw


def _trivium(tmp_path: Path, *args: str) -> Result:
    env = {"TRIVIUM_KEY": KEY, "TRIVIUM_DATA_DIR": str(tmp_path / "var")}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_run_then_list_and_show(gateway: TrialsGateway, tmp_path: Path) -> None:
    args = ("trial", "run", "triage", "--dataset", "triage-eval", "--arms", "prompt,rag")
    ran = _trivium(tmp_path, *args, "--gateway", gateway.url)
    assert ran.exit_code == 0, ran.output
    [trial_id] = gateway.trials
    assert f"trial {trial_id} finished: prompt 9/9, rag 9/9" in ran.output
    assert "accuracy" in ran.output  # the per-arm table

    listed = _trivium(tmp_path, "trial", "list", "--gateway", gateway.url, "--json")
    assert [t["id"] for t in json.loads(listed.output)] == [trial_id]

    shown = _trivium(tmp_path, "trial", "show", trial_id, "--gateway", gateway.url, "--json")
    record = json.loads(shown.output)
    assert record["status"] == "finished"
    assert [arm["arm"] for arm in record["summary"]["arms"]] == ["prompt", "rag"]


def test_ctrl_c_says_how_to_resume_and_resuming_finishes(
    gateway: TrialsGateway, tmp_path: Path
) -> None:
    gateway.delay_s = 0.01
    gateway.on_invoke = lambda n: os.kill(os.getpid(), signal.SIGINT) if n == 4 else None
    args = ("trial", "run", "triage", "--dataset", "triage-eval", "--arms", "prompt")
    stopped = _trivium(tmp_path, *args, "--concurrency", "1", "--gateway", gateway.url)
    assert stopped.exit_code == 130, stopped.output
    [trial_id] = gateway.trials
    resume = (
        f"resume with: trivium trial run triage --dataset triage-eval@1 --gateway {gateway.url} "
        f"--resume {trial_id}"
    )
    assert resume in stopped.output
    assert gateway.trials[trial_id].status == "interrupted"

    gateway.on_invoke = None
    resumed = _trivium(tmp_path, *resume.removeprefix("resume with: trivium ").split())
    assert resumed.exit_code == 0, resumed.output
    assert gateway.trials[trial_id].status == "finished"
    assert max(gateway.invokes.values()) <= 2
    assert len(gateway.invokes) == 9


def test_run_needs_a_dataset_or_a_trial_to_resume(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["trial", "run", "triage", "--gateway", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "--dataset NAME[@label] is required" in result.output


def test_without_a_gateway_or_a_running_stack_it_says_so(tmp_path: Path) -> None:
    result = _trivium(tmp_path, "--data-dir", str(tmp_path / "empty"), "trial", "list")
    assert result.exit_code == 1
    assert "no running stack found (trivium up); pass --gateway URL" in result.output


def test_an_unknown_arm_is_refused_naming_the_feature_arms(
    gateway: TrialsGateway, tmp_path: Path
) -> None:
    result = _trivium(
        tmp_path,
        "trial",
        "run",
        "triage",
        "--dataset",
        "triage-eval",
        "--arms",
        "finetune",
        "--gateway",
        gateway.url,
    )
    assert result.exit_code == 1
    assert (
        "cannot take arm(s) finetune; its arms: prompt, rag, rag+prompt, extractive"
        in result.output
    )
    assert gateway.trials == {}
