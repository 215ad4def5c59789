# `make run` and `make test` set everything up on a fresh machine; see the README.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SANDBOX_PORT ?= 5000
SANDBOX_AWS ?= 1
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

ifeq ($(SANDBOX_AWS),1)
RUN_PROCESSES := web worker beat sandbox
RUN_ENV := AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-http://127.0.0.1:$(SANDBOX_PORT)}
else
RUN_PROCESSES := web worker beat
RUN_ENV :=
endif

.PHONY: run test lint browser clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} SANDBOX_AWS=$(SANDBOX_AWS) SANDBOX_PORT=$(SANDBOX_PORT) APP_PORT=$(PORT) $(RUN_ENV) \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho -f Procfile start $(RUN_PROCESSES)

# Debian's Chromium for the browser tests (Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else echo "Install Debian's chromium package (sudo apt-get install chromium) for the browser tests."; exit 1; fi; }

test: $(VENV)/.installed-dev browser
	TEST_REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)
	@if $(PY) -c "import psycopg; psycopg.connect('$(TEST_POSTGRES_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== the concurrency tests again, on PostgreSQL =="; \
		DATABASE_URL=$(TEST_POSTGRES_URL) $(PY) -m pytest -m concurrency $(PYTEST_ARGS); \
	elif [ "$$REQUIRE_SERVICES" = 1 ]; then echo "PostgreSQL is required but not reachable at $(TEST_POSTGRES_URL)"; exit 1; \
	else echo "PostgreSQL not reachable at $(TEST_POSTGRES_URL): its concurrency run was not done."; fi

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var
