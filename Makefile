# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(PY) -m flask --app wsgi
PYTHON ?= python3

.PHONY: run test unit e2e lint screenshots mutants

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

# Unit, e2e and reliability tests on SQLite; unit and reliability again on a throwaway PostgreSQL.
test: $(VENV)/.installed
	VENV=$(VENV) bash scripts/ensure-browser.sh
	bash scripts/run-tests.sh $(PY)

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -p no:cacheprovider

# Browser tests. Against a deployment: make e2e BASE_URL=http://127.0.0.1:5000 BANK_URL=http://127.0.0.1:5001
# (MAIL_DIR=instance/mail to check e-mails). On failure: trace, screenshot and page HTML in test-results/.
E2E_FLAGS := --tracing retain-on-failure --screenshot only-on-failure --output test-results
e2e: $(VENV)/.installed
	VENV=$(VENV) bash scripts/ensure-browser.sh
	BANK_URL=$(BANK_URL) MAIL_DIR=$(MAIL_DIR) $(PY) -m pytest tests/e2e -p no:cacheprovider $(E2E_FLAGS) $(if $(BASE_URL),--base-url $(BASE_URL))

screenshots: $(VENV)/.installed
	$(PY) scripts/screenshots.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check webapp tests bench
	$(VENV)/bin/ruff format --check webapp tests bench
	$(VENV)/bin/lint-imports

# Mutation testing of payments, renewals, invoicing and the order/checkout services (mutmut,
# pinned in the test extra, configured in pyproject.toml). Not part of `make test`: it is long.
# Prints the score per module; survivors' diffs in mutants-survivors/. A subset:
# make mutants MUTANTS='webapp.payments.verify* webapp.payments.refunds*'
mutants: $(VENV)/.installed
	bash scripts/mutants.sh $(PY) $(MUTANTS)
