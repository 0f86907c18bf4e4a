# One entry point per job. `make serve` and `make test` are the README's two commands:
# each installs what it needs first (Python venv, npm packages, Debian's chromium/wrk).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PLAYWRIGHT_BROWSERS_PATH := $(CURDIR)/.playwright
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: install sdk native serve test test-fast lint bench fuzz apt clean

install: $(VENV)/.installed sdk_js/node_modules/.installed tests/clients/node_modules/.installed apt

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

sdk_js/node_modules/.installed: sdk_js/package.json
	cd sdk_js && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)
	touch $@

# Other products' npm libraries, unmodified, for the compatibility tests
# (tests/test_client_libraries.py, e2e/test_analytics_next.py).
tests/clients/node_modules/.installed: tests/clients/package.json
	cd tests/clients && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)
	touch $@

# Debian's chromium for the end-to-end tests, wrk for the benchmark, gcc for `native`,
# postgresql for the PostgreSQL backend's tests (tests/pgcluster.py). Debian keeps initdb
# off PATH, in /usr/lib/postgresql/<version>/bin, so that is where we look for it.
apt:
	@if ! command -v chromium >/dev/null || ! command -v wrk >/dev/null \
			|| ! command -v gcc >/dev/null \
			|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium wrk gcc postgresql; \
	fi

# The hot modules compiled with mypyc, in place (collector/native.py); a no-op while the
# build matches the sources.
native: $(VENV)/.installed
	$(PY) -c 'from collector import native; native.main()'

sdk: sdk_js/node_modules/.installed
	cd sdk_js && npm run --silent build

serve: install sdk native
	$(VENV)/bin/collector serve --demo

test: install sdk native
	$(VENV)/bin/pytest

test-fast: $(VENV)/.installed sdk native
	$(VENV)/bin/pytest -m "not e2e and not slow"

# Fuzzing every endpoint of a real server on both backends (tests/fuzz.py): 100,000 cases
# each; `make test` runs a seeded 1,200. FUZZ_SEED=N for another seed.
fuzz: $(VENV)/.installed native
	FUZZ_CASES=$${FUZZ_CASES:-100000} $(VENV)/bin/pytest -q tests/test_fuzz.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check collector tests e2e bench
	$(VENV)/bin/ruff format --check collector tests e2e bench
	$(VENV)/bin/mypy

bench: install sdk native
	$(PY) -m bench

clean:
	rm -rf $(VENV) sdk_js/node_modules tests/clients/node_modules .playwright build collector/_native.stamp
	find collector -name "*.so" -delete
