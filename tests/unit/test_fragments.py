"""Every htmx view: the fragment for htmx (no layout, a stable id, Vary), the page otherwise."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.unit.helpers import (
    HX,
    add,
    checkout_token,
    choose_method,
    confirm,
    customer_cart,
    freeze_views,
    login,
    orders_of,
    pending_card_order,
)
from webapp.payments.models import SavedCard


@dataclass
class Shop:
    pec_id: int
    line_id: int
    order_id: int
    card_id: int


@pytest.fixture(autouse=True)
def _views(app, monkeypatch, now):
    freeze_views(monkeypatch, now)


@pytest.fixture
def shop(client, db, catalogue, dummy_customer) -> Shop:
    """A logged-in customer with a pending card order, a saved card and a cart of two lines."""
    products = catalogue["products"]
    order = pending_card_order(client, products, dummy_customer.id)
    card = SavedCard(
        customer_id=dummy_customer.id,
        gateway_token="tok_test_1",
        brand="visa",
        last4="1111",
        exp_month=12,
        exp_year=2030,
        holder="Mario Rossi",
    )
    db.session.add(card)
    db.session.commit()
    add(client, products["PEC-STD"])
    add(client, products["FIRMA-R"])
    line_id = customer_cart(dummy_customer.id).lines[0].id
    return Shop(products["PEC-STD"].id, line_id, order.id, card.id)


def _with_discount(client, headers):
    client.post("/checkout/sconto", data={"code": "PEC5"})
    return client.post("/checkout/sconto/rimuovi", headers=headers)


# name: (request, fragment id, status, the plain request's answer: "page" or "redirect")
CASES = {
    "cart": (lambda c, s, h: c.get("/carrello", headers=h), "cart", 200, "page"),
    "cart-add": (
        lambda c, s, h: c.post(f"/carrello/aggiungi/{s.pec_id}", headers=h),
        "add-{pec_id}",
        200,
        "redirect",
    ),
    "cart-remove": (
        lambda c, s, h: c.post(f"/carrello/righe/{s.line_id}/rimuovi", headers=h),
        "cart",
        200,
        "page",
    ),
    "checkout": (lambda c, s, h: c.get("/checkout", headers=h), "checkout-items", 200, "page"),
    "checkout-method": (
        lambda c, s, h: c.post("/checkout/metodo", data={"payment_method": "card"}, headers=h),
        "checkout-items",
        200,
        "page",
    ),
    "checkout-method-error": (
        lambda c, s, h: c.post("/checkout/metodo", data={"payment_method": "x"}, headers=h),
        "checkout-items",
        422,
        "page",
    ),
    "checkout-years": (
        lambda c, s, h: c.post(f"/checkout/righe/{s.line_id}/anni", data={"years": "2"}, headers=h),
        "checkout-items",
        200,
        "page",
    ),
    "checkout-years-error": (
        lambda c, s, h: c.post(f"/checkout/righe/{s.line_id}/anni", data={"years": "9"}, headers=h),
        "checkout-items",
        422,
        "page",
    ),
    "checkout-discount": (
        lambda c, s, h: c.post("/checkout/sconto", data={"code": "PEC5"}, headers=h),
        "checkout-discount",
        200,
        "page",
    ),
    "checkout-discount-error": (
        lambda c, s, h: c.post("/checkout/sconto", data={"code": "NATALE"}, headers=h),
        "checkout-discount",
        422,
        "page",
    ),
    "checkout-remove-discount": (
        lambda c, s, h: _with_discount(c, h),
        "checkout-discount",
        200,
        "page",
    ),
    "checkout-confirm-error": (
        lambda c, s, h: c.post("/checkout/conferma", data={"checkout_token": "x"}, headers=h),
        "checkout-confirm",
        422,
        "page",
    ),
    "portal": (
        lambda c, s, h: c.get(f"/portale-pagamenti/ordini/{s.order_id}", headers=h),
        "card-picker",
        200,
        "page",
    ),
    "portal-select-card": (
        lambda c, s, h: c.post(
            f"/portale-pagamenti/ordini/{s.order_id}/scelta",
            data={"choice": str(s.card_id)},
            headers=h,
        ),
        "card-picker",
        200,
        "page",
    ),
    "portal-select-new": (
        lambda c, s, h: c.post(
            f"/portale-pagamenti/ordini/{s.order_id}/scelta", data={"choice": "new"}, headers=h
        ),
        "card-picker",
        200,
        "page",
    ),
    "portal-select-error": (
        lambda c, s, h: c.post(
            f"/portale-pagamenti/ordini/{s.order_id}/scelta", data={"choice": "424242"}, headers=h
        ),
        "card-picker",
        422,
        "page",
    ),
    "not-found": (lambda c, s, h: c.get("/ordini/424242", headers=h), "error", 404, "page"),
}


@pytest.mark.parametrize("name", CASES)
def test_htmx_gets_the_fragment(client, shop, name):
    send, fragment_id, status, _ = CASES[name]
    fragment_id = fragment_id.format(pec_id=shop.pec_id)
    r = send(client, shop, HX)
    assert r.status_code == status, r.text
    assert "<html" not in r.text
    assert "<body" not in r.text
    # The fragment's root element comes first and carries the stable id.
    assert re.match(rf'\s*<\w+ id="{fragment_id}"[ >]', r.text), r.text[:200]
    if name != "not-found":
        assert "HX-Request" in r.headers.get("Vary", "")


@pytest.mark.parametrize("name", CASES)
def test_plain_request_gets_the_page(client, shop, name):
    send, fragment_id, status, plain = CASES[name]
    fragment_id = fragment_id.format(pec_id=shop.pec_id)
    r = send(client, shop, {})
    if plain == "redirect":
        assert r.status_code == 303
        assert "HX-Redirect" not in r.headers
    else:
        assert r.status_code == status
        assert r.text.startswith("<!doctype html>")
        assert "<html" in r.text and "</html>" in r.text
        assert f'id="{fragment_id}"' in r.text  # the page includes the same fragment
        assert 'hx-swap-oob="true"' not in r.text  # nothing out of band in a whole page
        assert len(re.findall(r'id="cart-badge"', r.text)) == 1
    assert "HX-Request" in r.headers.get("Vary", "") or name == "not-found"


def test_portal_page_says_nothing_of_signatures_for_an_order_without_one(client, shop):
    # The note on Firma Digitale and Marca Temporale is only for orders that hold one
    # (tests/unit/test_front.py has the order that does).
    page = client.get(f"/portale-pagamenti/ordini/{shop.order_id}").text
    assert "Il rinnovo automatico non è disponibile" not in page
    assert "Nuova carta di pagamento" in page
    assert "Visa" in page and "1111" in page


def test_select_card_summarises_what_procedi_does(client, shop):
    r = client.post(
        f"/portale-pagamenti/ordini/{shop.order_id}/scelta",
        data={"choice": str(shop.card_id)},
        headers=HX,
    )
    assert "Addebiteremo € 12,08 sulla carta Visa •••• 1111" in r.text  # 9,90 + IVA
    r = client.post(
        f"/portale-pagamenti/ordini/{shop.order_id}/scelta", data={"choice": "new"}, headers=HX
    )
    assert "Sarai reindirizzato al sito della banca" in r.text


# --- htmx redirects: 200 + HX-Redirect, never a 3xx that htmx would swap in ---------------


def test_confirm_redirects_htmx_with_hx_redirect(client, shop, dummy_customer):
    r = confirm(client, checkout_token(client), htmx=True)
    assert r.status_code == 200
    assert r.text == ""
    newest = orders_of(dummy_customer.id)[0]
    assert r.headers["HX-Redirect"] == f"/ordini/{newest.id}"
    assert "HX-Request" in r.headers["Vary"]


def test_login_redirect_for_htmx(client, db, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    r = client.get("/checkout", headers=HX)
    assert r.status_code == 200
    assert r.headers["HX-Redirect"].startswith("/accedi?next=")
    assert "Location" not in r.headers


def test_pay_a_bank_transfer_order_redirects_htmx(client, db, catalogue, dummy_customer):
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    choose_method(client, "bank_transfer")
    confirm(client, checkout_token(client))
    [order] = orders_of(dummy_customer.id)
    r = client.post(f"/ordini/{order.id}/paga", headers=HX)
    assert r.status_code == 200
    assert r.headers["HX-Redirect"] == f"/ordini/{order.id}"
    r = client.post(f"/ordini/{order.id}/paga")
    assert r.status_code == 303
    assert r.headers["Location"] == f"/ordini/{order.id}"


def test_history_restore_gets_the_whole_page(client, shop):
    r = client.get("/carrello", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in r.text


def test_htmx_config_swaps_422(client):
    page = client.get("/").text
    assert '{"code": "422", "swap": true}' in page
    assert 'hx-headers=\'{"X-CSRFToken": ' in page


def test_vary_names_each_header_once_in_one_line():
    from flask import Response

    from webapp.htmx import VARY_HTMX, vary_on

    response = Response("")
    vary_on(response, VARY_HTMX)
    vary_on(response, VARY_HTMX)  # a redirect made from an htmx answer marks it again
    vary_on(response, "Cookie")
    vary_on(response, "hx-request, Accept-Language")  # names compare without their case
    assert response.headers.get_all("Vary") == ["HX-Request, HX-Boosted, Cookie, Accept-Language"]
