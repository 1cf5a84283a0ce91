"""The 500s the URL-map fuzz (tests/reliability/test_fuzz_urlmap.py) found, one test each."""

from __future__ import annotations

import html
import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.unit.helpers import HX, add, checkout_token, confirm, freeze_views, login
from webapp.shop import cart as shop_cart
from webapp.shop.models import DiscountCode
from webapp.shop.order_models import DiscountRedemption, Order
from webapp.signing import sign_request


@pytest.fixture(autouse=True)
def _views(app, monkeypatch, now):
    freeze_views(monkeypatch, now)


# --- a codice sconto refused at confirm ----------------------------------------------------


def _cart_with_code(client, db, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    client.post("/checkout/metodo", data={"payment_method": "card"})
    r = client.post("/checkout/sconto", data={"code": "BENVENUTO10"})
    assert r.status_code == 200
    return db.session.scalar(select(DiscountCode).where(DiscountCode.code == "BENVENUTO10"))


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda code, now: setattr(code, "valid_until", now - timedelta(hours=1)), "è scaduto"),
        (lambda code, now: setattr(code, "max_uses", code.uses), "numero massimo di utilizzi"),
    ],
    ids=["expired", "used up"],
)
def test_a_code_refused_at_confirm_gives_the_checkout_back(
    client, db, catalogue, dummy_customer, now, spoil, reason, htmx
):
    code = _cart_with_code(client, db, catalogue)
    token = checkout_token(client)
    spoil(code, now)  # between "applica" and "Conferma e completa l'ordine"
    db.session.commit()

    r = confirm(client, token, htmx=htmx)

    assert r.status_code == 422
    text = html.unescape(r.text)
    assert reason in text and "L'abbiamo tolto dal carrello" in text
    assert db.session.scalar(select(func.count(Order.id))) == 0
    assert db.session.scalar(select(func.count(DiscountRedemption.id))) == 0
    db.session.expire_all()
    cart = shop_cart.get_cart(dummy_customer.id, None)
    assert cart.discount_code_id is None  # gone, so the page shows the real total
    assert cart.checkout_token != token  # the new total needs a new confirmation
    assert cart.checkout_token in r.text
    # Confirmed again, at the full price.
    assert confirm(client, cart.checkout_token).status_code == 303
    order = db.session.scalars(select(Order)).one()
    assert order.discount_cents == 0 and order.discount_code is None


# --- the customer area's page asked by htmx ------------------------------------------------


@pytest.mark.parametrize("headers", [{**HX, "HX-Boosted": "true"}, HX])
def test_services_page_for_htmx_without_a_row_is_the_page(client, dummy_customer, headers):
    login(client)
    r = client.get("/area-clienti/", headers=headers)
    assert r.status_code == 200
    assert "I miei servizi" in r.text
    assert "HX-Request" in r.headers["Vary"]


# --- an unparsable HX-Current-URL or Referer when the login is needed ------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {**HX, "HX-Current-URL": "http://["},
        {**HX, "HX-Current-URL": "http://[::1"},
        {"Referer": "http://["},
    ],
)
def test_login_redirect_survives_a_malformed_current_url(client, headers):
    r = client.post("/checkout/sconto", data={"code": "X"}, headers=headers)
    assert r.status_code in (200, 303)
    location = r.headers.get("HX-Redirect") or r.headers["Location"]
    assert location.startswith("/accedi")


# --- `next` on login and registration ------------------------------------------------------


HOSTILE_NEXT = [
    "/area-clienti/\r\nSet-Cookie: x=1",
    "/\r\n",
    "/\n/evil.example",
    "/\t/evil.example",
    "/\x01",
    "/\x7f",
    "//evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "https://evil.example/",
    "http://[",
    " /area-clienti/",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_refuses_a_hostile_next(client, dummy_customer, target):
    r = client.post(
        "/accedi",
        query_string={"next": target},
        data={"email": "mario@example.it", "password": "password123"},
    )
    assert r.status_code == 303
    assert r.headers["Location"] == "/"


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_registration_refuses_a_hostile_next(client, target):
    r = client.post(
        "/registrati",
        query_string={"next": target},
        data={
            "name": "Nuovo Cliente",
            "email": "nuovo@example.it",
            "tax_code": "RSSMRA85T10A562S",
            "password": "password123",
            "password2": "password123",
        },
    )
    assert r.status_code == 303
    assert r.headers["Location"] == "/"


def test_a_local_next_is_kept(client, dummy_customer):
    r = client.post(
        "/accedi",
        query_string={"next": "/area-clienti/carte?x=1"},
        data={"email": "mario@example.it", "password": "password123"},
    )
    assert r.headers["Location"] == "/area-clienti/carte?x=1"


# --- login and registration posted as JSON -------------------------------------------------


@pytest.mark.parametrize("path", ["/accedi", "/registrati"])
@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "1", '{"email": 18446744073709551616}'])
def test_a_json_body_is_an_empty_form(client, path, body):
    r = client.post(path, data=body, content_type="application/json")
    assert r.status_code == 422


# --- a signed bank notification that is not a JSON object ----------------------------------


@pytest.mark.parametrize("body", [b"[1, 2]", b'"payment_id"', b"42", b"null", b"true"])
def test_a_signed_notification_that_is_not_an_object_is_refused(app, client, body):
    path = "/pagamenti/notifica"
    headers = sign_request(
        app.config["BANK_SHARED_SECRET"],
        app.config["BANK_MERCHANT_ID"],
        "POST",
        path,
        body,
        int(time.time()),
    )
    r = client.post(path, data=body, headers=headers, content_type="application/json")
    assert r.status_code == 400
    assert json.loads(r.data) == {"error": "bad_request"}
