"""Issue 19: one request must not stall the shop. The PEC pattern, request sizes, the
production refusals, the back office's query values, the cart cap, no-store and the CSP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from tests.unit.backoffice_world import make_staff, staff_session
from tests.unit.helpers import HX, add, login
from tests.unit.invoicing_helpers import PROFILES
from webapp import create_app
from webapp.config import DEFAULT_BANK_SECRET, DEFAULT_SECRET_KEY, PROJECT_DIR, TestConfig
from webapp.shop.billing import BillingData, check, clean

EVIL_PEC = "a@" + "." * 60_000 + "@"


# --- finding 1: the PEC field ---------------------------------------------------------------


def test_the_pec_check_is_linear_and_refuses_long_values(app):
    data = replace(PROFILES["business_pec"], pec=EVIL_PEC)
    with app.test_request_context():
        started = time.process_time()
        errors = check(clean(data))
        assert time.process_time() - started < 0.5
    assert "Massimo 254 caratteri" in errors["pec"]


@pytest.mark.parametrize(
    ("pec", "valid"),
    [
        ("fatture@pec.example.it", True),
        ("a@b.it", True),
        ("non-una-pec", False),
        ("a@@b.it", False),
        ("a@b", False),
        ("a@" + "." * 200 + "@", False),
    ],
)
def test_the_pec_is_checked_by_email_validator(app, pec, valid):
    data = replace(PROFILES["business_pec"], pec=pec)
    with app.test_request_context():
        assert ("pec" not in check(clean(data))) is valid


def test_posting_the_pathological_pec_answers_422_at_once(client, dummy_customer):
    login(client)
    form = {**vars(PROFILES["business_pec"]), "pec": EVIL_PEC}
    started = time.process_time()
    response = client.post("/area-clienti/fatturazione", data=form)
    assert time.process_time() - started < 1.0
    assert response.status_code == 422
    assert "Massimo 254 caratteri" in response.text


def test_every_billing_field_has_a_maximum_length_checked_first(app):
    from webapp.shop.billing import MAX_LENGTH
    from webapp.shop.forms import BillingForm

    assert set(MAX_LENGTH) == {f for f in vars(BillingData()) if f != "customer_type"} | {
        "customer_type"
    }
    with app.test_request_context(method="POST", data={"pec": "x" * 300, "city": "y" * 61}):
        form = BillingForm()
        assert not form.validate()
        assert form.pec.errors == ["Massimo 254 caratteri."]
        assert form.city.errors == ["Massimo 60 caratteri."]


def test_a_long_email_stops_before_the_email_validator(client):
    response = client.post(
        "/registrati",
        data={"name": "x", "email": "a@" + "." * 50_000, "tax_code": "1" * 40_000},
    )
    assert response.status_code == 422
    assert "Indirizzo e-mail troppo lungo" in response.text


# --- finding 6: request sizes ---------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_in_italian(client):
    response = client.post("/accedi", data={"email": "x" * (300 * 1024)})
    assert response.status_code == 413
    assert "Richiesta troppo grande" in response.text


def test_the_bank_notification_has_a_smaller_limit(app, client):
    limit = app.config["WEBHOOK_MAX_CONTENT_LENGTH"]
    assert limit < app.config["MAX_CONTENT_LENGTH"]
    big = b'{"payment_id": "' + b"x" * limit + b'"}'
    response = client.post("/pagamenti/notifica", data=big, content_type="application/json")
    assert response.status_code == 413
    small = client.post("/pagamenti/notifica", data=b"{}", content_type="application/json")
    assert small.status_code == 401  # unsigned: read, then refused


def test_a_50_mb_notification_is_refused_before_it_is_read(client):
    class Endless:
        """A body the test would notice being read: it raises past the first chunk."""

        read_bytes = 0

        def read(self, size=-1):
            Endless.read_bytes += max(size, 0)
            if Endless.read_bytes > 1024 * 1024:
                raise AssertionError("the body was read")
            return b"x" * max(size, 0)

    response = client.post(
        "/pagamenti/notifica",
        content_type="application/json",
        environ_overrides={"wsgi.input": Endless(), "CONTENT_LENGTH": str(50 * 1024 * 1024)},
    )
    assert response.status_code == 413


# --- finding 5: production refuses the development secrets ---------------------------------


@pytest.mark.parametrize("env", ["production", "staging", "", "Production "])
def test_any_environment_but_development_or_testing_refuses_default_secrets(env):
    for secrets in (
        {"SECRET_KEY": DEFAULT_SECRET_KEY, "BANK_SHARED_SECRET": "b" * 32},
        {"SECRET_KEY": "s" * 32, "BANK_SHARED_SECRET": DEFAULT_BANK_SECRET},
    ):
        with pytest.raises(RuntimeError, match="SECRET_KEY"):
            create_app(TestConfig, {"ENV_NAME": env, **secrets})


@pytest.mark.parametrize("env", ["development", "testing"])
def test_development_and_testing_accept_the_defaults(env):
    app = create_app(
        TestConfig,
        {"ENV_NAME": env, "SECRET_KEY": DEFAULT_SECRET_KEY, "BANK_SHARED_SECRET": "x"},
    )
    assert app.config["SECRET_KEY"] == DEFAULT_SECRET_KEY


def _import_wsgi(env: dict) -> subprocess.CompletedProcess:
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"APP_ENV", "SECRET_KEY", "BANK_SHARED_SECRET"} and not k.startswith("FLASK_")
    }
    clean_env.update(env, DATABASE_URL="sqlite://", PYTHONPATH=str(PROJECT_DIR))
    return subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=PROJECT_DIR,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_app_env_the_shop_is_production_and_refuses_to_start():
    refused = _import_wsgi({})
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr
    started = _import_wsgi({"APP_ENV": "development"})
    assert started.returncode == 0, started.stderr


def test_seed_demo_refuses_outside_development_and_testing():
    app = create_app(
        TestConfig, {"ENV_NAME": "production", "SECRET_KEY": "s" * 32, "BANK_SHARED_SECRET": "b"}
    )
    with app.app_context():  # as `flask` gives it
        result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "APP_ENV=development" in result.output


def test_make_run_sets_app_env_development():
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "run: export APP_ENV := $(or $(APP_ENV),development)" in makefile


# --- finding 7: back-office query values -----------------------------------------------------


@pytest.fixture
def staff(client, db):
    member = make_staff()
    staff_session(client, member)
    return member


@pytest.mark.parametrize(
    "query",
    [
        "dal=x&csrf_token=y",
        "dal=x&error=z&staff=1",
        "dal=0001-01-01&al=9999-12-31",
        "dal=2026-01-01&al=9999-12-31",
        "dal=%C2%B2&al=2026-01-01",
        "dal=" + "9" * 5000,
    ],
)
def test_the_invoice_export_refuses_bad_dates_with_422(client, staff, query):
    response = client.get(f"/backoffice/fatture?{query}")
    assert response.status_code == 422
    assert "<section" in response.text


@pytest.mark.parametrize("page", ["9" * 25, "²", "-1", "", "1" * 19, "abc", "0"])
def test_page_numbers_are_clamped(client, staff, page):
    assert client.get(f"/backoffice/registro?pagina={page}").status_code == 200
    assert client.get(f"/backoffice/cerca?q=mario&tipo=clienti&pagina={page}").status_code == 200


def test_no_view_passes_the_query_string_whole_to_a_template():
    pattern = re.compile(r"\*\*\s*request\.(args|form|values)|request\.(args|form)\.to_dict\(\)\)")
    offenders = [
        str(path.relative_to(PROJECT_DIR))
        for path in (PROJECT_DIR / "webapp").rglob("*.py")
        if "bank" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_the_shared_helpers_clamp_and_refuse(app):
    from webapp.errors import InvalidChoice
    from webapp.queryargs import clamped_int, parse_day, whole_number

    assert clamped_int("9" * 25, 1, 1, 100) == 100
    assert clamped_int("²", 1, 1, 100) == 1
    assert clamped_int("0", 1, 1, 100) == 1
    assert clamped_int(" 7 ", 1, 1, 100) == 7
    assert whole_number("١٢") is None
    with app.test_request_context():
        assert parse_day("25/11/2026").isoformat() == "2026-11-25"
        for raw in ("0001-01-01", "9999-12-31", "x", "2026-02-30", "1" * 100):
            with pytest.raises(InvalidChoice):
                parse_day(raw)


# --- finding 8: cart cap, no-store, form-action ---------------------------------------------


def test_the_cart_takes_at_most_the_configured_lines(app, client, catalogue):
    app.config["CART_MAX_LINES"] = 3
    product = catalogue["products"]["PEC-STD"]
    for _ in range(3):
        assert add(client, product, htmx=True).status_code == 200
    url = f"/carrello/aggiungi/{product.id}"
    refused = client.post(url, headers=HX)
    assert refused.status_code == 422
    assert "al massimo 3 prodotti" in refused.text
    assert client.post(url).status_code == 303
    assert "al massimo 3 prodotti" in client.get("/carrello").text


def test_pages_with_personal_data_are_not_stored(client, dummy_customer, catalogue):
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")
    login(client)
    for url in ("/area-clienti/", "/area-clienti/fatture", "/area-clienti/fatturazione", "/"):
        response = client.get(url, follow_redirects=True)
        assert response.headers.get("Cache-Control") == "no-store", url
    assert client.get("/checkout", headers=HX).headers.get("Cache-Control") == "no-store"


def test_the_back_office_is_not_stored(client, staff):
    assert client.get("/backoffice/").headers["Cache-Control"] == "no-store"
    assert client.get("/backoffice/accesso").headers["Cache-Control"] == "no-store"


def test_the_csp_limits_form_action_to_the_shop_and_the_bank(app, client):
    csp = client.get("/").headers["Content-Security-Policy"]
    bank = app.config["BANK_API_URL"].rstrip("/")
    assert f"form-action 'self' {bank}" in csp
    other = create_app(TestConfig, {"BANK_PUBLIC_URL": "https://pay.bank.example/hosted/x"})
    csp = other.test_client().get("/condizioni-generali").headers["Content-Security-Policy"]
    assert csp.endswith("form-action 'self' https://pay.bank.example")


def test_static_files_keep_their_cache(client):
    with client.get("/static/app.css") as response:
        assert "no-store" not in response.headers.get("Cache-Control", "")


def test_logging_in_keeps_the_cart_within_the_cap(app, client, catalogue, dummy_customer):
    from tests.unit.helpers import customer_cart

    app.config["CART_MAX_LINES"] = 2
    product = catalogue["products"]["PEC-STD"]
    login(client)
    add(client, product, htmx=True)
    client.post("/esci")
    visitor = app.test_client()
    for _ in range(2):
        add(visitor, product, htmx=True)
    login(visitor)
    assert len(customer_cart(dummy_customer.id).lines) == 2
