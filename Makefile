# Smileloop — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 5000

.PHONY: demo test install install-dev test-packages test-sqlite test-postgres lint serve

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -c requirements.lock -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'

# Debian's packages the suite drives: Chromium for the browser test (never a downloaded browser build) and wrk,
# the load generator of the bench's HTTP part (smileloop.demo.bench_http).
test-packages:
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; command -v wrk >/dev/null || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

demo: install
	mkdir -p var
	$(BIN)/smileloop migrate --noinput
	$(BIN)/smileloop demo --customers $(DEMO_CUSTOMERS) --url http://$(HOST):$(PORT)
	$(BIN)/smileloop compilemessages --ignore=.venv >/dev/null 2>&1 || true
	$(BIN)/smileloop collectstatic --noinput >/dev/null
	BIN=$(BIN) bash scripts/demo-serve.sh $(HOST):$(PORT)

test: install-dev test-packages
	bash scripts/test.sh

lint: install-dev
	$(BIN)/ruff check src config tests
	$(BIN)/lint-imports
