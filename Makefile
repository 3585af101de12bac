# The two set-up commands of the README. Each creates .venv when missing and
# installs the project into it, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint types unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/login-audit demo --output-dir demo-output

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP_TEST)
	$(BIN)/mypy

unit: $(STAMP_TEST)
	scripts/ensure-postgres.sh
	scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal

test: lint types unit

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
