# make run    install what is missing, start PostgreSQL/Redis/RabbitMQ, migrate, run everything
# make test   the same set-up, then lint, migration check and the whole test suite
# make bench  the same set-up, then the benchmarks against raw Celery on the same broker

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench setup deps services services-stop lint format migrate browser scale-out compose-test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

deps: $(STAMP)

services:
	@scripts/services.sh start

services-stop:
	@scripts/services.sh stop

setup: deps services

migrate: setup
	$(PY) manage.py migrate --noinput

run: migrate
	@scripts/run.sh

lint: deps
	$(VENV)/bin/ruff check --no-cache .  # a stale cache once hid an import-order error CI saw
	$(VENV)/bin/ruff format --check --no-cache .
	$(VENV)/bin/lint-imports  # the layering contracts in pyproject.toml
	$(VENV)/bin/mypy blocks graphs executions credits notifications schedules triggers credentials accounts outbound idempotency files console common config

format: deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

browser:
	@scripts/browser.sh

test: setup lint browser
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null
	rm -rf .local/test-metrics  # metrics files of earlier test sessions' processes
	$(VENV)/bin/pytest

bench: migrate
	$(PY) -m bench

# Two network namespaces as two hosts, a worker in each, one graph on both (needs root).
scale-out: migrate
	$(PY) -m bench.scale_out

# The container build, tested with podman: image, compose stack, a graph end to end, a
# worker restarted mid-run (needs root; opt-in, minutes; see docker/README.md).
compose-test: deps
	@bash -o pipefail -c 'scripts/compose_test.sh 2>&1 | tee .local/compose-test.log'
