# The two commands of the README: `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# The database suite runs on SQLite first, then again on this PostgreSQL.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/mailwright
ADDR ?= 127.0.0.1:8000

.PHONY: run test lint system-deps worker clean production-venv

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	touch $@

# The demo sandbox's IMAP and SMTP servers: only `make run` (and the tests) start them.
$(VENV)/.demo: requirements-demo.txt $(VENV)/.runtime
	$(PIP) install -r requirements-demo.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-demo.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -r requirements-dev.txt
	touch $@

run: $(VENV)/.demo
	DEBUG=1 $(PY) manage.py setup_local
	DEBUG=1 $(PY) manage.py run_local --addr $(ADDR)

worker: $(VENV)/.runtime
	DEBUG=1 $(VENV)/bin/celery -A designer worker --loglevel INFO

# Dovecot and Chromium come from Debian; installed only when missing (needs root, as in CI).
system-deps:
	@missing=""; \
	test -x /usr/sbin/dovecot || missing="$$missing dovecot-imapd"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

# The production suite runs the product from a clean virtualenv of requirements.txt alone, cached
# by the file's hash; building it here keeps the download out of the tests themselves.
production-venv: $(VENV)/.dev
	$(PY) -m tests.production.venv

test: system-deps $(VENV)/.dev lint production-venv
	$(PY) manage.py makemigrations --check --dry-run --settings tests.settings
	$(VENV)/bin/pytest -m "not production"
	$(VENV)/bin/pytest -m production -p no:cacheprovider
	DATABASE_URL=$(TEST_POSTGRES_URL) $(VENV)/bin/pytest -m "database and not browser" -p no:cacheprovider

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
