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
