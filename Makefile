# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# The suite runs against real services; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test check services chromium node-tools migrate clean cluster bench

# Runtime packages only (make run, make cluster).
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Runtime plus tests, benchmark, lint and type checks (make test, make bench).
$(VENV)/.installed-dev: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## Install, migrate and serve on http://$(HOST):$(PORT) (SQLite + in-memory layer unless DATABASE_URL/REDIS_URL are set).
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) -m mysite.serve --bind $(HOST) --port $(PORT) mysite.asgi:application

## A local two-process deployment (ports CLUSTER_PORTS, default "8001 8002") on PostgreSQL and Redis; docs/DEPLOYMENT.md.
cluster: $(VENV)/.installed services
	PY=$(PY) scripts/run-cluster.sh

## Install, make sure PostgreSQL and Redis are up, check format, lint and types, and run the whole suite against them.
test: $(VENV)/.installed-dev services chromium node-tools check
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) REQUIRE_SERVICES=1 $(PY) -m pytest $(PYTEST_ARGS)

## Format, lint and type checks (pyproject.toml); part of `make test`.
check: $(VENV)/.installed-dev
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy

services:
	scripts/ensure-services.sh

## The Node side (package.json: the clients/js workspace; dcrf-client, redocly, the AsyncAPI parser, tsc, ws), as package-lock.json pins it.
node-tools:
	npm ci --no-audit --no-fund --loglevel=error && sha256sum package-lock.json | cut -d' ' -f1 > node_modules/.installed-lock-sha256

## Debian's Chromium for the browser tests (installed when /usr/bin/chromium is missing).
chromium:
	scripts/ensure-chromium.sh

## Benchmark: fan-out, latency, connections, reconnect storm; 6 configurations (raw websockets ceiling included) in < 15 min (bench/README.md). BENCH_ARGS=--help
bench: $(VENV)/.installed-dev services
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var db.sqlite3
