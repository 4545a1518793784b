"""`trivium policy check|diff|show|schema`, run in process on files (no service needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from trivium.cli.main import cli
from trivium.gateway.policy import InvalidPolicyError, load_policy_file, policy_schema_text

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "deploy" / "policy.example.yaml"
NEXT = ROOT / "deploy" / "policy.example.next.yaml"
BAD = sorted((ROOT / "tests" / "support" / "policies").glob("*.yaml"))


def trivium(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_check_of_the_examples_passes_and_lists_the_warnings() -> None:
    result = trivium("policy", "check", str(EXAMPLE), str(NEXT))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{EXAMPLE}: valid (hash ")
    assert lines[0].endswith("version 7), 3 warnings")
    assert "on_fail" not in result.output  # withhold has a review path now
    assert lines[-1].startswith(f"{NEXT}: valid")
    assert lines[-1].endswith("0 warnings")


def test_strict_fails_on_warnings() -> None:
    assert trivium("policy", "check", "--strict", str(EXAMPLE)).exit_code == 1
    assert trivium("policy", "check", "--strict", str(NEXT)).exit_code == 0


@pytest.mark.parametrize("path", BAD, ids=[path.stem for path in BAD])
def test_check_lists_every_error_the_gateway_loader_finds(path: Path) -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        load_policy_file(path)
    result = trivium("policy", "check", "--json", str(path), str(EXAMPLE))
    assert result.exit_code == 1
    [bad, good] = json.loads(result.output)
    assert bad["file"] == str(path)
    assert (bad["valid"], bad["hash"], bad["warnings"]) == (False, None, [])
    assert bad["errors"] == caught.value.extra["errors"]
    assert good["valid"] is True
    assert good["version"] == 7
    assert good["errors"] == []
    text = trivium("policy", "check", str(path))
    assert text.exit_code == 1
    assert f"{path}: invalid, {len(bad['errors'])} error" in text.output
    for error in bad["errors"]:
        assert f"  error  {error['path']}: {error['message'].splitlines()[0]}" in text.output


def test_an_unreadable_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = trivium("policy", "check", "--json", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 1
    [report] = json.loads(result.output)
    [error] = report["errors"]
    assert error["path"] == "(file)"
    assert error["message"].startswith("cannot read:")


def test_an_unreachable_retriever_is_one_clear_line() -> None:
    result = CliRunner().invoke(
        cli, ["policy", "check", "--retriever", "http://127.0.0.1:9", str(EXAMPLE)]
    )
    assert result.exit_code == 1
    assert "retriever at http://127.0.0.1:9 unreachable" in result.output


def test_diff_of_the_examples_reads_well() -> None:
    result = trivium("policy", "diff", str(EXAMPLE), str(NEXT))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "support-kb  changed\n  weights: 20.00% of users move to another arm\n" in out
    assert "ticket-triage  changed\n  weights: 32.35% of users move to another arm\n" in out
    assert "  fallback: + local-backup\n" in out
    assert "  shadow: - canary-template\n" in out
    assert "  features.policy-qa.route: rag+prompt -> rag\n" in out
    assert "  features.policy-qa.template: support-answer@3 -> support-answer@4\n" in out
    assert "triage-with-context  removed (route finetune+rag)\n" in out
    assert "release-notes  added (route prompt)\n" in out
    assert "local-backup       0.00%" not in out  # an arm with no users either side


def test_diff_json_is_the_structured_diff() -> None:
    result = trivium("policy", "diff", "--json", str(EXAMPLE), str(NEXT))
    assert result.exit_code == 0
    body = json.loads(result.output)
    assert (body["old"]["version"], body["new"]["version"]) == (7, 8)
    moved = {f["feature"]: f["moved_share"] for f in body["features"]}
    assert moved["support-kb"] == pytest.approx(0.2)
    assert moved["ticket-triage"] == pytest.approx(11 / 34)


def test_diff_of_an_invalid_file_lists_its_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: {x: {route: prompt}}\n")
    result = CliRunner().invoke(cli, ["policy", "diff", str(EXAMPLE), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: invalid" in result.output
    assert "features.x.upstream: is required" in result.output


def test_show_reads_the_configured_policy_file() -> None:
    env = {"TRIVIUM_GATEWAY__POLICY_FILE": str(EXAMPLE)}
    result = trivium("policy", "show", "--json", env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["version"] == 7
    assert body["source"] == str(EXAMPLE)
    assert body["features"]["support-kb"]["fallback"] == ["prompt"]
    text = trivium("policy", "show", env=env).output
    assert f"policy {body['hash']}  version 7\n" in text
    assert f"source: {EXAMPLE}\n" in text
    assert "support-kb" in text
    assert "control 90%" in text


def test_show_without_a_policy_file_says_so() -> None:
    result = CliRunner().invoke(cli, ["policy", "show"], env={"TRIVIUM_GATEWAY__POLICY_FILE": None})
    assert result.exit_code == 1
    assert "no policy file is configured (gateway.policy_file)" in result.output


def test_show_live_of_an_unreachable_gateway_is_one_clear_line() -> None:
    result = CliRunner().invoke(cli, ["policy", "show", "--live", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "gateway at http://127.0.0.1:9 unreachable" in result.output


def test_schema_prints_the_generated_schema() -> None:
    result = trivium("policy", "schema")
    assert result.exit_code == 0
    assert result.output == policy_schema_text()
