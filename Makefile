# quantdesk: `make run` starts the server on the embedded defaults, `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test bench lint migrate clean lock

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c requirements.lock -e .
	touch $@

$(DEVSTAMP): $(STAMP) pyproject.toml requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c requirements.lock -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/quantdesk migrate
	$(BIN)/quantdesk serve

migrate: $(STAMP)
	$(BIN)/quantdesk migrate

test: $(DEVSTAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

bench: $(DEVSTAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Re-pin every dependency (run by hand when pyproject.toml changes).
lock: $(BIN)/python
	$(BIN)/uv pip compile pyproject.toml --extra dev --quiet -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache
