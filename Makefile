# Two commands set everything up on a fresh Debian machine with Python 3.11:
#   make demo   the service with its sample catalog on embedded defaults (SQLite, no Redis)
#   make test   installs and starts what the tests need, then runs lint, types and the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The independent credential verifier (Node.js) the tests run; npm writes this file on each install.
VERIFIER := tests/verifier/node_modules/.package-lock.json

.PHONY: demo smoke test lint pytest services sandbox-image bench clean verifier

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { scripts/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(VERIFIER): tests/verifier/package.json tests/verifier/package-lock.json scripts/setup-verifier.sh
	scripts/setup-verifier.sh
	@touch $(VERIFIER)

verifier: $(VERIFIER)

demo: $(STAMP)
	scripts/setup-sandbox.sh --quiet || echo "note: no sandbox backend; quizzes work, repository grading needs one (see docs/sandbox.md)"
	$(BIN)/grader demo

smoke: $(STAMP)
	scripts/setup-sandbox.sh --quiet
	$(BIN)/grader demo --smoke

services:
	scripts/setup-test-env.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

pytest: $(STAMP) $(VERIFIER)
	$(BIN)/python -m pytest

test: $(STAMP) services lint pytest

bench: $(STAMP) services
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache tests/verifier/node_modules
