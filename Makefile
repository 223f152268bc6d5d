# Bollard: `make run` serves the shipped integrations; `make test` runs lint, then the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.installed-test-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# What ruff checks and formats; mypy checks the packages (tests, bench and examples are excluded in pyproject.toml).
PY_DIRS := platform sandbox tests bench examples

.PHONY: run test lint typecheck format bench bench-all fuzz clean install install-test vendor node

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=77'

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# the package and its runtime dependencies
install: $(STAMP)

# plus the test and lint tools (pytest, ruff, mypy, build)
install-test: $(TEST_STAMP)

# serve the shipped integrations on http://127.0.0.1:8000, state in ./.bollard
run: $(STAMP)
	$(BIN)/bollard serve --host 127.0.0.1 --port 8000 --integrations integrations --data-dir .bollard

# npm packages the tests drive (the MCP Inspector's CLI), from the committed lockfile; when npm
# is missing or the registry unreachable those tests skip (fail with BOLLARD_REQUIRE_NODE=1)
NODE_STAMP := tests/node/node_modules/.installed
$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then echo "npm not found: the MCP Inspector tests will skip"; \
	elif (cd tests/node && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null); then touch $@; \
	else echo "npm ci failed in tests/node (registry unreachable?): the MCP Inspector tests will skip"; fi

node: $(NODE_STAMP)

# ruff check + ruff format --check + mypy; nothing is changed (`make format` fixes what it can)
lint: $(TEST_STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# rewrite the tree into shape: ruff format, then ruff check --fix
format: $(TEST_STAMP)
	$(BIN)/ruff format $(PY_DIRS)
	$(BIN)/ruff check --fix $(PY_DIRS)

# lint first, then the whole suite (PYTEST_ARGS="-k sql" to narrow it); `node` installs the
# MCP Inspector (tests/node, npm ci). The web page's
# browser tests drive Debian's chromium: installed here with apt when missing and root
# (never a browser downloaded by playwright); otherwise they skip, saying why.
test: lint node
	@command -v chromium >/dev/null 2>&1 || if [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium (apt) for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and this is not root: the browser tests will skip"; fi
	$(BIN)/pytest -q -p no:cacheprovider --cov=platform --cov=sandbox --cov-report= $(PYTEST_ARGS)
	@echo "line coverage of platform/ and sandbox/ (host process only; no gate): $$($(BIN)/coverage report --format=total)%"

# the API fuzzing of tests/api/test_api_conformance.py, longer: schemathesis against /openapi.json
# with an admin and an agent token, FUZZ_EXAMPLES per operation, role and generation mode
# (`make test` runs 8); no 500s, every response as documented. Then schemathesis's own runner
# (coverage, fuzzing and stateful phases, every check) against a real `bollard serve`.
FUZZ_EXAMPLES ?= 200
fuzz: $(TEST_STAMP)
	BOLLARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/api/test_api_conformance.py
	$(BIN)/python -m tests.support.fuzz_live $(FUZZ_EXAMPLES)

# ONE table with every figure of the performance issue (bench/bench_table.py, a few minutes),
# then a tool call through MCP vs the REST API (bench_mcp.py), the JS runtime vs Python vs a
# direct GET (bench_js.py), shared limits' cost per call (bench_limits.py) and the 10,000-call
# load with faults on two replicas (bench_load.py, several minutes); installs Debian's wrk
# (the throughput rows) when missing
bench: $(TEST_STAMP)
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || sudo apt-get install -y -qq wrk >/dev/null 2>&1 || echo "wrk could not be installed: the table skips the throughput rows"
	$(BIN)/python bench/bench_table.py
	$(BIN)/python bench/bench_api_gap.py --op one
	$(BIN)/python bench/bench_mcp.py
	$(BIN)/python bench/bench_js.py
	$(BIN)/python bench/bench_limits.py
	$(BIN)/python bench/bench_load.py

# every benchmark script in bench/, each printing its own figures (longer)
bench-all: $(TEST_STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# refresh the web page's vendored htmx, Pico CSS (and axe-core for the tests) from npm at
# their pinned versions (scripts/vendor-web.sh); the files are committed, nothing runs this
vendor:
	scripts/vendor-web.sh

# remove the virtualenv, build output and tool caches; keeps .bollard (make run's state and
# credential key: deleting it loses every stored credential, so do that yourself)
clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find platform sandbox tests bench examples -name __pycache__ -type d -prune -exec rm -rf {} +
