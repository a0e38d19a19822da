# Huike: two commands — `make run` (demo on SQLite) and `make test` (whole suite on SQLite and PostgreSQL).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HUIKE_HOST ?= 127.0.0.1
export HUIKE_PORT ?= 8080
TEST_PG ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: run test lint typecheck test-sqlite test-postgres test-dates bench install system-deps clean reliability fuzz rasa test-rasa bench-peer security

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian chromium + CJK fonts for the browser tests (installed when missing and running as root).
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk >/dev/null 2>&1 \
	     || (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk >/dev/null)); \
	  else echo "note: chromium/fonts-noto-cjk missing and not root: browser tests will be skipped"; fi; \
	fi

run: install
	mkdir -p var
	$(BIN)/huike db upgrade
	$(BIN)/huike seed-demo
	$(BIN)/huike run --host $(HUIKE_HOST) --port $(HUIKE_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

test-sqlite: install system-deps
	HUIKE_TEST_DATABASE_URL=sqlite $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-postgres: install system-deps
	HUIKE_TEST_DATABASE_URL=$(TEST_PG) $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The date-sensitive tests again, on both databases, with the clock at instants that break suites: a month's
# last minute in Beijing (still the 31st in UTC), 春节 2027 (no official schedule: the fallback calendar), a leap day.
DATED_TESTS := tests/tickets tests/scrm tests/insight/test_spikes.py tests/web/test_admin.py tests/web/test_dashboard_figures.py \
  tests/nlu/test_text_entities.py
TEST_DATES := 2026-12-31T23:59:30+08:00 2027-02-08T10:00:00+08:00 2028-02-29T12:00:00+08:00

test-dates: install
	@for now in $(TEST_DATES); do for db in sqlite $(TEST_PG); do \
	  echo "== clock at $$now on $${db%%+*}"; \
	  HUIKE_TEST_NOW=$$now HUIKE_TEST_DATABASE_URL=$$db $(BIN)/pytest -q -p no:cacheprovider $(DATED_TESTS) || exit 1; \
	done; done

test: lint typecheck test-sqlite test-postgres test-dates

# Rasa 3.6.21 needs Python 3.8-3.10 and its own pins: a separate venv (pyenv's 3.10.13, else python3.10).
RASA_VENV := .venv-rasa
RASA_PY ?= $(shell p="$$(pyenv root 2>/dev/null)/versions/3.10.13/bin/python"; [ -x "$$p" ] && echo "$$p" || command -v python3.10)

$(RASA_VENV)/.installed:
	@test -n "$(RASA_PY)" || (echo "rasa needs python3.10 (pyenv install 3.10.13)"; exit 1)
	$(RASA_PY) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install -q rasa==3.6.21 jieba
	touch $@

rasa: $(RASA_VENV)/.installed

# Contract test against a real Rasa server (export -> rasa train -> rasa run -> web-chat through Rasa).
test-rasa: install rasa
	HUIKE_TEST_RASA=1 RASA_TELEMETRY_ENABLED=false $(BIN)/pytest -q -p no:cacheprovider tests/rasa_contract

# Issue 9 proofs at full size: the 10,000 x 3 retry storm across 2 workers (PostgreSQL + Redis), and long fuzzing.
reliability: install
	HUIKE_TEST_DATABASE_URL=$(TEST_PG) HUIKE_RELIABILITY_STORM=10000 $(BIN)/pytest -q -p no:cacheprovider --timeout 3600 tests/reliability

fuzz: install
	HUIKE_FUZZ_EXAMPLES=$${HUIKE_FUZZ_EXAMPLES:-3000} HUIKE_FUZZ_RANDOM=1 $(BIN)/pytest -q -p no:cacheprovider --timeout 3600 tests/fuzz

# Issue 15 probe: a live server on 127.0.0.1 (SQLite), hostile inputs + every route as each role; 0 5xx, 0 leaks.
security: install
	$(BIN)/python -m tests.security.probe

bench: install
	@for b in $(filter-out bench/peer.py,$(wildcard bench/*.py)); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Huike beside Rasa 3.6.21 (REST channel, in-memory and SQL tracker) under one load client: the
# comparison of issue 19. BENCH_QUICK=1: a few minutes; BENCH_PEER_PG=1: PostgreSQL, 1 and 2 workers.
bench-peer: install rasa
	$(BIN)/python bench/peer.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
