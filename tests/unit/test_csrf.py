"""CSRF on: forms carry the hidden field, htmx the X-CSRFToken header; bank callback exempt."""

from __future__ import annotations

import json
import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import FIXED_NOW
from tests.unit.helpers import HX
from webapp import create_app
from webapp.config import TestConfig
from webapp.extensions import db
from webapp.signing import sign_request

HEADER_TOKEN = re.compile(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""")
FIELD_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@pytest.fixture
def csrf_app(tmp_path):
    """The shop with CSRF protection on; no app context stays pushed, as in production."""
    from webapp.demo import seed
    from webapp.shop.models import Customer

    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'csrf.db'}",
            "WTF_CSRF_ENABLED": True,
        },
    )
    with app.app_context():
        db.create_all()
        seed(FIXED_NOW)
        customer = Customer(
            email="mario@example.it",
            name="Mario Rossi",
            tax_code="RSSMRA85T10A562S",
            email_confirmed_at=FIXED_NOW,
        )
        customer.set_password("password123")
        db.session.add(customer)
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def browser(csrf_app) -> FlaskClient:
    return csrf_app.test_client()


def product_id(app: Flask, sku: str = "PEC-STD") -> int:
    from webapp.shop.models import Product

    with app.app_context():
        return db.session.scalar(select(Product.id).where(Product.sku == sku))


def lines_in_carts(app: Flask) -> int:
    from webapp.shop.models import CartLine

    with app.app_context():
        return db.session.scalar(select(func.count(CartLine.id)))


def header_token(client: FlaskClient, path: str = "/") -> str:
    """The token htmx sends, as the page puts it in hx-headers on <body>."""
    return HEADER_TOKEN.search(client.get(path).text).group(1)


def test_post_without_token_is_400(csrf_app, browser):
    r = browser.post(f"/carrello/aggiungi/{product_id(csrf_app)}")
    assert r.status_code == 400
    assert "Richiesta non valida" in r.text
    assert "<html" in r.text
    assert lines_in_carts(csrf_app) == 0


def test_htmx_post_without_token_is_400_with_a_fragment(csrf_app, browser):
    r = browser.post(f"/carrello/aggiungi/{product_id(csrf_app)}", headers=HX)
    assert r.status_code == 400
    assert "<html" not in r.text
    assert 'id="error"' in r.text
    assert lines_in_carts(csrf_app) == 0


def test_htmx_header_token_is_accepted(csrf_app, browser):
    token = header_token(browser)
    r = browser.post(
        f"/carrello/aggiungi/{product_id(csrf_app)}", headers={**HX, "X-CSRFToken": token}
    )
    assert r.status_code == 200, r.text
    assert lines_in_carts(csrf_app) == 1


def test_hidden_field_works_for_plain_forms(csrf_app, browser):
    page = browser.get("/").text
    pec = product_id(csrf_app)
    form = re.search(rf'action="/carrello/aggiungi/{pec}".*?</form>', page, flags=re.S).group(0)
    token = FIELD_TOKEN.search(form).group(1)
    r = browser.post(f"/carrello/aggiungi/{pec}", data={"csrf_token": token})
    assert r.status_code == 303
    assert lines_in_carts(csrf_app) == 1


def test_wrong_or_foreign_token_is_400(csrf_app, browser):
    pec = product_id(csrf_app)
    stranger = csrf_app.test_client()
    foreign = header_token(stranger)
    header_token(browser)  # the browser has a session with its own token
    for token in (foreign, "not-a-token", ""):
        r = browser.post(f"/carrello/aggiungi/{pec}", headers={**HX, "X-CSRFToken": token})
        assert r.status_code == 400, token
    assert lines_in_carts(csrf_app) == 0


def test_login_form_needs_its_token(csrf_app, browser):
    credentials = {"email": "mario@example.it", "password": "password123"}
    assert browser.post("/accedi", data=credentials).status_code == 400
    token = FIELD_TOKEN.search(browser.get("/accedi").text).group(1)  # {{ form.csrf_token }}
    r = browser.post("/accedi", data={**credentials, "csrf_token": token})
    assert r.status_code == 303
    assert "Esci (Mario Rossi)" in browser.get("/").text


def test_logout_needs_a_token(csrf_app, browser):
    token = FIELD_TOKEN.search(browser.get("/accedi").text).group(1)
    browser.post(
        "/accedi",
        data={"email": "mario@example.it", "password": "password123", "csrf_token": token},
    )
    assert browser.post("/esci").status_code == 400  # a foreign page cannot log you out
    assert "Esci (Mario Rossi)" in browser.get("/").text
    page = browser.get("/").text
    logout_form = re.search(r'action="/esci".*?</form>', page, flags=re.S).group(0)
    r = browser.post("/esci", data={"csrf_token": FIELD_TOKEN.search(logout_form).group(1)})
    assert r.status_code == 303


def test_checkout_htmx_post_with_header_token(csrf_app, browser):
    token = FIELD_TOKEN.search(browser.get("/accedi").text).group(1)
    browser.post(
        "/accedi",
        data={"email": "mario@example.it", "password": "password123", "csrf_token": token},
    )
    browser.post(
        f"/carrello/aggiungi/{product_id(csrf_app)}",
        headers={**HX, "X-CSRFToken": header_token(browser)},
    )
    token = header_token(browser, "/checkout")
    r = browser.post("/checkout/metodo", data={"payment_method": "card"}, headers=HX)
    assert r.status_code == 400
    r = browser.post(
        "/checkout/metodo", data={"payment_method": "card"}, headers={**HX, "X-CSRFToken": token}
    )
    assert r.status_code == 200
    assert "Rinnovo automatico attivato" in r.text


def test_bank_notification_is_exempt_but_signed(csrf_app, browser):
    r = browser.post(
        "/pagamenti/notifica",
        json={"payment_id": "pay_x"},
        headers={"X-Signature-Timestamp": str(int(time.time())), "X-Signature": "00"},
    )
    assert r.status_code == 401  # refused by the signature check, not by CSRF (400)
    assert r.get_json() == {"error": "bad_signature"}

    body = json.dumps({"payment_id": "pay_unknown", "status": "authorised"}).encode()
    headers = sign_request(
        csrf_app.config["BANK_SHARED_SECRET"],
        csrf_app.config["BANK_MERCHANT_ID"],
        "POST",
        "/pagamenti/notifica",
        body,
        int(time.time()),
    )
    r = browser.post(
        "/pagamenti/notifica",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 404  # signed and past CSRF: the payment is simply unknown
    assert r.get_json() == {"error": "unknown_payment"}
