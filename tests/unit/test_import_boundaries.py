"""The gateway runs without the ML stack: importing and building it never loads torch."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers", "peft", "qdrant_client")

PROBE = f"""
import sys
from trivium.gateway.app import create_app
from trivium.gateway.server import serve
import trivium.cli.main
create_app()
loaded = [m for m in {HEAVY!r} if m in sys.modules]
print(",".join(loaded))
"""


def test_gateway_never_imports_the_ml_stack() -> None:
    # Meaningful only where torch is importable: then nothing but our imports could load it.
    assert importlib.util.find_spec("torch") is not None, "torch is part of the test environment"
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"gateway pulled in: {result.stdout.strip()}"


def test_no_module_imports_a_generic_services_package() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.joinpath("services").rglob("*.py"), *root.joinpath("tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] == "services"]
    assert offenders == []


# Which `trivium.*` packages each package may import; the CLI drives them all.
ALLOWED_IMPORTS = {
    "common": {"common"},
    "registry": {"common", "registry"},
    "gateway": {"common", "registry", "gateway"},
    "retriever": {"common", "registry", "retriever"},
    "model": {"common", "registry", "model"},
    "trials": {"common", "registry", "trials"},
}


def _trivium_imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return [name for name in names if name.startswith("trivium.")]


def test_services_import_only_the_shared_packages_and_themselves() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(root)}: {name}"
        for package, allowed in ALLOWED_IMPORTS.items()
        for path in root.joinpath("services", package).rglob("*.py")
        for name in _trivium_imports(path)
        if name.split(".")[1] not in allowed
    ]
    assert offenders == []


def test_the_retriever_contract_loads_nothing_but_msgspec() -> None:
    probe = (
        "import sys\n"
        "import trivium.common.contracts.retriever\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "services = sorted(m for m in sys.modules if m.startswith('trivium.')"
        " and not m.startswith('trivium.common'))\n"
        "print(','.join(heavy + services))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
