# One entry point per job. `make serve` and `make test` are the README's two commands:
# each installs what it needs first. `make serve` needs Python 3.11+ and Node.js with npm,
# nothing else: the runtime packages and the SDK build, made side by side, and no
# compiler, browser or database server. `make test` adds the dev packages, other
# products' npm libraries, and Debian's chromium, wrk, gcc and postgresql.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PLAYWRIGHT_BROWSERS_PATH := $(CURDIR)/.playwright
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

# A target whose recipe fails is removed, so that a failed SDK build is made again.
.DELETE_ON_ERROR:

.PHONY: install sdk native serve test test-fast lint bench fuzz apt clean

install: $(VENV)/.installed $(VENV)/.installed-dev sdk_js/node_modules/.installed \
	tests/clients/node_modules/.installed apt

# The venv's packages are installed by uv, which resolves and downloads in parallel and
# keeps a cache: pip took 30–50 s of this loaded 2-core machine for the runtime packages
# alone (resolving from large index pages, one download at a time), uv 6–11 s. uv is a
# Python package (one wheel, no dependencies): the one on PATH, else one that pip puts in
# the venv. That pip is the system Python's when it can install into another interpreter
# (`--python`, pip 22.3+), which spares making the venv with a pip of its own (ensurepip
# installs and compiles pip and setuptools: seconds of CPU); else the venv's, made once.
UV := $(or $(shell command -v uv 2>/dev/null),$(VENV)/bin/uv)
UV_INSTALL := $(UV) pip install -q --python $(PY)

$(VENV)/bin/uv:
	python3 -m venv --without-pip $(VENV)
	python3 -m pip --python $(PY) install -q uv 2>/dev/null \
		|| { $(PY) -m ensurepip -q --default-pip && $(PY) -m pip install -q uv; }

# What `collector serve` needs, without compiling to bytecode (uv's default): modules are
# compiled when first imported, and a server imports only some of what the packages ship.
$(VENV)/.installed: pyproject.toml | $(UV)
	python3 -m venv --without-pip $(VENV)
	$(UV_INSTALL) -e .
	touch $@

# The tests', the linters' and the benchmarks' packages (pyproject.toml's dev extras).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(UV_INSTALL) -e '.[dev]'
	touch $@

sdk_js/node_modules/.installed: sdk_js/package.json
	cd sdk_js && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)
	touch $@

# Other products' npm libraries, unmodified, for the compatibility tests
# (tests/test_client_libraries.py, e2e/test_analytics_next.py, e2e/test_posthog_js.py),
# and axe-core, the accessibility engine e2e/test_dashboard_a11y.py runs on every page.
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
# build matches the sources. Nothing needs it: without a current build the same modules
# run as plain Python. `make serve` never waits for it; `make test` and `make fuzz` run
# whichever build is there and say which; CI (.ci/run) builds it and tests it; `make bench`
# builds it, since the published figures are of the compiled build.
native: $(VENV)/.installed-dev apt
	$(PY) -c 'from collector import native; native.main()'

# The SDK build (sdk_js/build.mjs writes static/ and sdk_js/dist/), remade when a source
# changes; `make sdk` remakes it regardless.
SDK_SOURCES := sdk_js/build.mjs sdk_js/shrink.mjs sdk_js/package.json $(wildcard sdk_js/src/*)
static/telltale.js: sdk_js/node_modules/.installed $(SDK_SOURCES)
	cd sdk_js && npm run --silent build

sdk: sdk_js/node_modules/.installed
	cd sdk_js && npm run --silent build

# The Python packages and the SDK side by side (one waits on the network while the other
# builds), then the server, which prints the demo app's key and a curl once it answers.
serve:
	@$(MAKE) --no-print-directory -j2 $(VENV)/.installed static/telltale.js
	$(VENV)/bin/collector serve --demo

test: install sdk
	$(VENV)/bin/pytest

test-fast: $(VENV)/.installed-dev sdk
	$(VENV)/bin/pytest -m "not e2e and not slow"

# Fuzzing every endpoint of a real server on both backends (tests/fuzz.py): 100,000 cases
# each; `make test` runs a seeded 1,200. FUZZ_SEED=N for another seed.
fuzz: $(VENV)/.installed-dev
	FUZZ_CASES=$${FUZZ_CASES:-100000} $(VENV)/bin/pytest -q tests/test_fuzz.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check collector tests e2e bench
	$(VENV)/bin/ruff format --check collector tests e2e bench
	$(VENV)/bin/mypy

bench: install sdk native
	$(PY) -m bench

clean:
	rm -rf $(VENV) sdk_js/node_modules tests/clients/node_modules .playwright build collector/_native.stamp static
	find collector -name "*.so" -delete
