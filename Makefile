# Bollard: `make run` serves the shipped integrations; `make test` runs lint, then the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.installed-test-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# What ruff checks and formats; mypy checks the packages (tests, bench and examples are excluded in pyproject.toml).
PY_DIRS := platform sandbox tests bench examples

.PHONY: run test lint typecheck format bench fuzz clean install install-test

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

# lint first, then the whole suite (PYTEST_ARGS="-k sql" to narrow it)
test: lint
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

# each benchmark script in bench/ (they print their own figures)
bench: $(TEST_STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# remove the virtualenv, build output and tool caches; keeps .bollard (make run's state and
# credential key: deleting it loses every stored credential, so do that yourself)
clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find platform sandbox tests bench examples -name __pycache__ -type d -prune -exec rm -rf {} +
