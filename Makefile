# The two commands: `make run` (set up, then run the stack on embedded defaults)
# and `make test` (set up, then lint, type-check and test). Both start from a fresh clone.
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export OMP_NUM_THREADS ?= 1

.PHONY: setup run test lint typecheck bench load

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock scripts/setup.sh
	bash scripts/setup.sh
	touch $@

run: setup
	$(BIN)/trivium up

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: setup
	$(BIN)/python load/bench_registry.py

load: setup
	TRIVIUM_LOAD_API_KEY="$$(cat var/auth/demo_key 2>/dev/null)" $(BIN)/locust --config load/locust.conf
