# Uniwizard — quick start:  make up   (set up + run the stack on the simulator)
#                           make test (the whole test suite)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup up test lint typecheck protos protos-check clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: setup
	$(BIN)/uniwizard up --sim --demo

test: setup protos-check lint typecheck
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy uniwizard registry_svc router_svc caller_svc uniwizard_sim

protos: setup
	$(BIN)/python scripts/gen_protos.py

protos-check: setup
	$(BIN)/python scripts/gen_protos.py --check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache

# Tracing UI (optional, never part of `make test`): Arize Phoenix in its own venv, .envs/phoenix.
.PHONY: phoenix check-phoenix
phoenix:
	scripts/phoenix.sh

check-phoenix: setup
	$(BIN)/python scripts/check_phoenix.py --tree
