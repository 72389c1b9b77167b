# Liaison: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ADDR   ?= 127.0.0.1:8000
# PostgreSQL for the second test run (skipped with a notice when unreachable; CI requires it).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/liaison

RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP    := $(VENV)/.installed-test

.PHONY: demo test install assets lint serve worker screenshot lock clean

demo: install assets ## set up, load the demo data and serve on http://$(ADDR)
	$(BIN)/liaison migrate --noinput
	$(BIN)/liaison collectstatic --noinput -v0
	$(BIN)/liaison demo-data
	$(BIN)/liaison serve $(ADDR)

test: $(TEST_STAMP) assets ## lint, then the whole suite on SQLite and PostgreSQL (unit, API, browser)
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) BIN=$(BIN) bash scripts/run-tests

install: $(RUNTIME_STAMP)

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Liaison needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements/runtime.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/runtime.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(TEST_STAMP): requirements/test.txt $(RUNTIME_STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/test.txt
	touch $@

assets: install ## front-end packages from the npm registry (verified by sha512), never a CDN
	$(BIN)/liaison assets

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

serve: install assets
	$(BIN)/liaison serve $(ADDR)

worker: install
	$(BIN)/liaison worker

screenshot: $(TEST_STAMP) assets ## refresh docs/screenshot.png from the browser test
	LIAISON_SCREENSHOT=docs/screenshot.png $(BIN)/pytest tests/e2e/test_new_user.py -q -p no:cacheprovider

lock: ## re-pin dependencies after editing pyproject.toml
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes -q -o requirements/runtime.txt
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 --generate-hashes -q -o requirements/test.txt

clean:
	rm -rf $(VENV) var liaison/static/vendor
