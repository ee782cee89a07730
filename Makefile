# One task runner for the README, CI and developers alike.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# uv installs exactly what uv.lock pins (with hashes), so that every machine runs the versions
# the suite last passed with. Its own version is pinned here and in the lock.
UV_VERSION := 0.13.9
# The platform's certificate store, not uv's bundled roots: behind a TLS-inspecting proxy
# (as on CI and some offices) only the system store trusts the registry's certificate.
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_SYSTEM_CERTS=1 $(BIN)/uv
SYNC := $(UV) sync --locked --quiet

.PHONY: setup run test browser lint typecheck bench bench-quick viewer-check upgrade-deps clean

$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(SYNC) --extra dev
	touch $(STAMP)

setup: $(STAMP)

## The main job: check the built-in specs, then run the support-triage workflow over the sample
## tickets on the simulated back-end (no API key needed; every answer is labelled SIMULATED),
## show the runs that wait for a person (the tickets no queue fits: a batch with waiting
## items and no failed one exits 0) and the traces of the last runs.
run: $(STAMP)
	$(BIN)/microagents validate agents workflows
	$(BIN)/microagents run workflows/support_triage.yaml --input-file examples/tickets.jsonl \
		--out tickets.results.jsonl --backend simulate
	$(BIN)/microagents runs list --status waiting --workflow support_triage --limit 3
	$(BIN)/microagents trace list --limit 3

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

## The test command: style, the layering contract, types, then the suite.
test: lint typecheck browser
	$(BIN)/pytest

## The eval report's HTML test opens the page in headless Chromium. CI runs as root on Debian,
## so a missing browser is installed with apt-get; elsewhere, say what to install and stop.
CHROMIUM ?= chromium
browser:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "make test needs Chromium for the HTML report test: install it (apt-get install chromium)," \
	         "or set CHROMIUM=/path/to/chromium" >&2; exit 1; \
	  fi; }

## Benchmarks (not part of the test suite): ratios against baselines measured in the same run.
bench: $(STAMP)
	$(SYNC) --extra dev --extra bench
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(SYNC) --extra dev --extra bench
	$(BIN)/python -m bench --quick

## What Arize Phoenix, a real trace viewer, shows of two runs (not part of the test suite:
## Phoenix is ~1 GB and pins its own OpenTelemetry, so it gets a virtual environment of its own).
PHOENIX_VENV := .venv-phoenix
viewer-check: $(STAMP)
	test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet 'arize-phoenix==20.26.1'
	$(BIN)/python -m bench.phoenix_check --phoenix-python $(PHOENIX_VENV)/bin/python

## The maintainer's routine: move every pin to the newest release the ranges in pyproject.toml
## allow, then prove the new set with the whole suite and the benchmarks before committing
## uv.lock. A failure here is the signal to fix (or to bound a range), not to skip.
upgrade-deps: $(STAMP)
	$(UV) lock --upgrade
	$(SYNC) --extra dev
	$(MAKE) test
	$(MAKE) bench-quick

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) .mypy_cache .ruff_cache .pytest_cache
