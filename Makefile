# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(PY) -m flask --app wsgi
PYTHON ?= python3

.PHONY: run test unit e2e lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(PY) -m webapp.devserver

# Unit, e2e and reliability tests, on SQLite and then on a throwaway PostgreSQL.
test: $(VENV)/.installed
	VENV=$(VENV) bash scripts/ensure-browser.sh
	bash scripts/run-tests.sh $(PY)

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -p no:cacheprovider

e2e: $(VENV)/.installed
	VENV=$(VENV) bash scripts/ensure-browser.sh
	$(PY) -m pytest tests/e2e -p no:cacheprovider

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check webapp tests bench
	$(VENV)/bin/ruff format --check webapp tests bench
	$(VENV)/bin/lint-imports
