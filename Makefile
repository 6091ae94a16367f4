# Uniwizard — quick start:  make up   (set up + run the stack on the simulator)
#                           make test (the whole test suite)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    := $(VENV)/.installed-run
DEV    := $(VENV)/.installed-dev

.PHONY: setup setup-run up test lint typecheck protos protos-check clean bench

# What running the stack needs (quick), and everything the tests need (Evennia, the SDKs, ...).
setup-run: $(RUN)
setup: $(DEV)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN): pyproject.toml $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN)

$(DEV): pyproject.toml $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(RUN) $(DEV)

up: setup-run
	$(BIN)/uniwizard up --sim --demo

test: setup protos-check lint typecheck
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python -m benchmarks.run

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy uniwizard registry_svc router_svc caller_svc edge_svc uniwizard_sim uniwizard_client uniwizard_evennia

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

check-phoenix: setup-run
	$(BIN)/python scripts/check_phoenix.py --tree
