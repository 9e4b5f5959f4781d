# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2

.PHONY: run serve-prod test lint install translations migrate seed clean-db

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

translations: install
	$(VENV)/bin/pybabel compile -d translations -f

migrate: install translations
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) seed-demo --if-empty

# Serves on SQLite in instance/ (or DATABASE_URL), without the reloader so that
# scheduled jobs run in one process.
run: seed
	$(FLASK) run --host $(HOST) --port $(PORT) --no-reload --no-debugger

# Production: migrations first, then gunicorn with $(WORKERS) workers (each runs the
# sweeps, see gunicorn.conf.py) on DATABASE_URL (PostgreSQL recommended), with rate-limit
# and metrics counters in Redis and JSON-line logs on stdout. docs/operations.md.
serve-prod: install translations
	$(FLASK) db upgrade
	RATELIMIT_STORAGE_URI="$${RATELIMIT_STORAGE_URI:-redis://127.0.0.1:6379}" \
	YISHI_LOG_STREAM="$${YISHI_LOG_STREAM:-stdout}" \
	YISHI_ENV="$${YISHI_ENV:-production}" \
	exec $(VENV)/bin/gunicorn -c gunicorn.conf.py --workers $(WORKERS) \
		--bind $(HOST):$(PORT) 'app:create_app()'

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tests.gate

# pytest exits 5 when it collected nothing: that is a failure for us, not a pass.
test: lint translations
	$(PY) -m pytest -n auto --dist loadgroup -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

# Re-extract UI strings after changing templates or code, then translate the new ones
# in translations/zh/LC_MESSAGES/messages.po.
messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg --ignore-dirs '.* __pycache__' -k _l -k lazy_gettext -o translations/messages.pot --no-location --sort-output .
	$(VENV)/bin/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete
