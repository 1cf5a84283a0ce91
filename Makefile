# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(PY) -m flask --app wsgi
PYTHON ?= python3

.PHONY: run test unit e2e qa lint screenshots lighthouse cluster loadtest mutants

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# APP_ENV=development: the only way the development secrets and the demo data are accepted.
run: export APP_ENV := $(or $(APP_ENV),development)
run: $(VENV)/.installed
	mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(PY) -m webapp.devserver

# The production shape on one machine: PostgreSQL (DATABASE_URL, or a throwaway one), Redis, two
# gunicorn nodes behind HAProxy on CLUSTER_PORT (8080), two schedulers, the mock bank, a mail sink.
cluster: export APP_ENV := $(or $(APP_ENV),development)
cluster: $(VENV)/.installed
	@bash scripts/ensure-cluster-tools.sh
	@if [ -n "$(DATABASE_URL)" ]; then $(PY) -m webapp.cluster; \
	else bash scripts/with-postgres.sh $(PY) -m webapp.cluster; fi

# Locust against the cluster (default) or LOAD_URL=http://127.0.0.1:5000 (make run); USERS,
# SPAWN_RATE, DURATION; then the money check. Reports in loadtest/ (scripts/loadtest.sh).
loadtest: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[load]'
	bash scripts/loadtest.sh $(PY)

# Unit, e2e and reliability tests on SQLite; unit and reliability again on a throwaway PostgreSQL.
test: $(VENV)/.installed
	VENV=$(VENV) bash scripts/ensure-browser.sh
	bash scripts/ensure-cluster-tools.sh
	bash scripts/run-tests.sh $(PY)

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -p no:cacheprovider

# Browser tests on servers they start (the default), or against a deployment:
# make e2e BASE_URL=http://127.0.0.1:5000 BANK_URL=http://127.0.0.1:5001 SANDBOX_TOKEN=…
# On failure: trace, screenshot and page HTML in test-results/.
E2E_FLAGS := --tracing retain-on-failure --screenshot only-on-failure --output test-results
e2e: $(VENV)/.installed
	VENV=$(VENV) bash scripts/ensure-browser.sh
	BANK_URL=$(BANK_URL) SANDBOX_TOKEN=$(SANDBOX_TOKEN) $(PY) -m pytest tests/e2e -p no:cacheprovider $(E2E_FLAGS) $(if $(BASE_URL),--base-url $(BASE_URL))

# QA against a deployment (make run is one): every browser test, the axe checks and the twin
# smoke, QA_WORKERS at a time, with an HTML report linking each failure's trace, screenshot
# and pages: make qa BASE_URL=http://127.0.0.1:5000 BANK_URL=http://127.0.0.1:5001 SANDBOX_TOKEN=…
QA_WORKERS ?= 2
QA_REPORT ?= qa-report/report.html
qa: $(VENV)/.installed
	@if [ -z "$(BASE_URL)" ] || [ -z "$(SANDBOX_TOKEN)" ]; then \
	  echo "Usage: make qa BASE_URL=http://127.0.0.1:5000 BANK_URL=http://127.0.0.1:5001 SANDBOX_TOKEN=… (make run prints the token)"; exit 2; fi
	VENV=$(VENV) bash scripts/ensure-browser.sh
	BASE_URL=$(BASE_URL) BANK_URL=$(BANK_URL) SANDBOX_TOKEN=$(SANDBOX_TOKEN) \
	  $(PY) -m pytest tests/e2e -p no:cacheprovider $(E2E_FLAGS) --base-url $(BASE_URL) \
	  -n $(QA_WORKERS) --html $(QA_REPORT) --self-contained-html; \
	  status=$$?; echo "Report: $(QA_REPORT)"; exit $$status

screenshots: $(VENV)/.installed
	$(PY) scripts/screenshots.py

# Lighthouse 12.2.3 (npm, pinned, into .lighthouse/), mobile, on a `make run` system of its own
# (free ports): catalogue, cart and checkout must score 100 in all four categories.
lighthouse: $(VENV)/.installed
	$(PY) scripts/lighthouse.py

# bandit: the shop strictly (each finding fixed or marked `# nosec` with its reason); the mock
# bank (a test double for staging/QA, never deployed in production) without B101 (its asserts
# are invariants of the double) and B105 (its development defaults, replaced by the environment).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check webapp tests bench
	$(VENV)/bin/ruff format --check webapp tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -r webapp -x webapp/bank
	$(VENV)/bin/bandit -q -r webapp/bank -s B101,B105

# Mutation testing of payments, renewals, invoicing and the order/checkout services (mutmut,
# pinned in the test extra, configured in pyproject.toml). Not part of `make test`: it is long.
# Prints the score per module; survivors' diffs in mutants-survivors/. A subset:
# make mutants MUTANTS='webapp.payments.verify* webapp.payments.refunds*'
# The renewal batch path (PostgreSQL only) runs after the SQLite run, on a throwaway PostgreSQL
# (state in mutants-pg/); only that pass: make mutants MUTANTS_PG=1 [MUTANTS='webapp.renewals.batch_claim*']
mutants: $(VENV)/.installed
	MUTANTS_PG=$(MUTANTS_PG) bash scripts/mutants.sh $(PY) $(MUTANTS)
