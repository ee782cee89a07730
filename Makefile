# One task runner for the README, CI and developers alike.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint typecheck bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The main job: check the built-in specs, then run the support-triage workflow over the sample
## tickets on the simulated back-end (no API key needed; every answer is labelled SIMULATED),
## and show the trace of the last run.
run: $(STAMP)
	$(BIN)/microagents validate agents workflows
	$(BIN)/microagents run workflows/support_triage.yaml --input-file examples/tickets.jsonl \
		--out tickets.results.jsonl --backend simulate
	$(BIN)/microagents trace list --limit 3

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## The test command: style, types, then the suite.
test: lint typecheck
	$(BIN)/pytest

## Benchmarks (not part of the test suite): ratios against baselines measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
