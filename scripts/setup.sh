#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment with torch (CPU wheel) and Trivium, every
# dependency pinned by requirements.lock (the same constraints the Dockerfile's images use).
# Regenerate the lock after changing dependencies: .venv/bin/python scripts/lock_requirements.py > requirements.lock
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, at the lock's CPU build: any other spec pulls a multi-GB CUDA build.
TORCH=$(grep -E '^torch==' requirements.lock)
.venv/bin/python -m pip install --quiet -c requirements.lock "${TORCH%%+*}"
.venv/bin/python -m pip install --quiet -c requirements.lock -e ".[all,dev]"
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
