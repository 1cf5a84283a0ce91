"""Checkout: login, payment method and auto-renewal, terms, server totals, idempotent confirm."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

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
)
from tests.unit.invoicing_helpers import give_billing
from webapp.errors import CheckoutError
from webapp.extensions import db
from webapp.shop import cart as shop_cart
from webapp.shop import checkout, orders
from webapp.shop.models import CustomerType, PaymentMethod, ProductPrice
from webapp.shop.order_models import Order

RENEWABLE = ["PEC-STD", "SPID-PF", "CONS-1", "FPA-100"]
NOT_RENEWABLE = ["FIRMA-R", "MARCHE-50"]


@pytest.fixture(autouse=True)
def _views(app, monkeypatch, now):
    freeze_views(monkeypatch, now)


def order_count(db) -> int:
    return db.session.scalar(select(func.count(Order.id)))


def fill_cart(client, catalogue, *skus):
    for sku in skus:
        add(client, catalogue["products"][sku])


def ready(client, catalogue, *skus, method="card"):
    """Cart with the products, logged in as the dummy customer, payment method chosen."""
    fill_cart(client, catalogue, *skus)
    login(client)
    choose_method(client, method)


def line_rows(text: str) -> list[str]:
    """The checkout's item rows, one string per line."""
    return re.findall(r'<tr id="checkout-line-\d+">.*?</tr>', text, flags=re.S)


# --- login ----------------------------------------------------------------------------------


def test_checkout_requires_login(client, catalogue):
    fill_cart(client, catalogue, "PEC-STD")
    r = client.get("/checkout")
    assert r.status_code in (302, 303)
    location = urlsplit(r.headers["Location"])
    assert location.path == "/accedi"
    assert parse_qs(location.query)["next"] == ["/checkout"]


def test_checkout_requires_login_htmx(client, catalogue):
    fill_cart(client, catalogue, "PEC-STD")
    r = client.post(
        "/checkout/metodo",
        data={"payment_method": "card"},
        headers={**HX, "HX-Current-URL": "http://localhost/checkout"},
    )
    assert r.status_code == 200
    assert r.text == ""
    location = urlsplit(r.headers["HX-Redirect"])
    assert location.path == "/accedi"
    assert parse_qs(location.query)["next"] == ["/checkout"]


def test_a_form_posted_after_the_session_expired_comes_back_to_its_page(client, catalogue):
    fill_cart(client, catalogue, "PEC-STD")
    r = client.post(
        "/checkout/conferma", data={"terms": "1"}, headers={"Referer": "http://localhost/checkout"}
    )
    assert r.status_code in (302, 303)
    # Not back to /checkout/conferma, which only answers POST.
    assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == ["/checkout"]


def test_login_comes_back_to_the_checkout(client, catalogue, dummy_customer):
    fill_cart(client, catalogue, "PEC-STD")
    r = client.post(
        "/accedi?next=/checkout", data={"email": "mario@example.it", "password": "password123"}
    )
    assert r.status_code == 303
    assert r.headers["Location"] == "/checkout"
    assert client.get("/checkout").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/checkout/metodo",
        "/checkout/sconto",
        "/checkout/sconto/rimuovi",
        "/checkout/conferma",
        "/checkout/righe/1/anni",
    ],
)
def test_every_checkout_post_requires_login(client, db, catalogue, path):
    r = client.post(path, data={"payment_method": "card", "years": "2", "code": "PEC5"})
    assert r.status_code in (302, 303)
    assert urlsplit(r.headers["Location"]).path == "/accedi"
    assert order_count(db) == 0


def test_checkout_with_an_empty_cart_goes_to_the_catalogue(client, dummy_customer):
    login(client)
    r = client.get("/checkout")
    assert r.status_code == 303
    assert r.headers["Location"] == "/"
    assert "Il carrello è vuoto" in client.get("/").text
    r = client.get("/checkout", headers=HX)
    assert r.headers["HX-Redirect"] == "/"


# --- payment method and auto-renewal --------------------------------------------------------


def test_card_turns_on_auto_renewal_per_item(client, catalogue, dummy_customer):
    ready(client, catalogue, *RENEWABLE, *NOT_RENEWABLE)
    page = client.get("/checkout").text
    rows = line_rows(page)
    assert len(rows) == 6
    for row in rows[:4]:
        assert "Rinnovo automatico attivato: ogni anno sulla carta" in row
        assert "non è disponibile" not in row
    assert "Il rinnovo automatico non è disponibile per Firma Digitale" in rows[4]
    assert "Il rinnovo automatico non è disponibile per Marca Temporale" in rows[5]
    for row in rows[4:]:
        assert "Rinnovo automatico attivato" not in row
        assert "<select" not in row  # no Frequenza di rinnovo to choose
    assert 'value="card" checked' in page


def test_bank_transfer_shows_no_auto_renewal(client, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD", "FIRMA-R", method="bank_transfer")
    r = choose_method(client, "bank_transfer")
    assert "Rinnovo automatico attivato" not in r.text
    assert "Con il bonifico bancario il rinnovo automatico non si attiva" in r.text
    assert "Il rinnovo automatico non è disponibile per Firma Digitale" in r.text


def test_before_choosing_a_method(client, catalogue, dummy_customer):
    fill_cart(client, catalogue, "PEC-STD")
    login(client)
    page = client.get("/checkout").text
    assert "Scegli il metodo di pagamento." in page
    assert "Rinnovo automatico attivato" not in page
    assert "Carta di credito" in page and "Bonifico bancario" in page


def test_invalid_payment_method(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD")
    r = client.post("/checkout/metodo", data={"payment_method": "cash"}, headers=HX)
    assert r.status_code == 422
    assert "Scegli un metodo di pagamento valido." in r.text
    assert customer_cart(dummy_customer.id).payment_method is PaymentMethod.CARD


def test_card_order_lines_renew_only_the_renewable(client, db, catalogue, dummy_customer):
    ready(client, catalogue, *RENEWABLE, *NOT_RENEWABLE)
    assert confirm(client, checkout_token(client)).status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert order.payment_method is PaymentMethod.CARD
    assert [(line.product.sku, line.auto_renew) for line in order.lines] == [
        *((sku, True) for sku in RENEWABLE),
        *((sku, False) for sku in NOT_RENEWABLE),
    ]
    assert order.has_auto_renew


def test_bank_transfer_order_has_no_auto_renewal(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD", "SPID-PF", "MARCHE-50", method="bank_transfer")
    r = confirm(client, checkout_token(client))
    assert r.status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert order.payment_method is PaymentMethod.BANK_TRANSFER
    assert not any(line.auto_renew for line in order.lines)
    page = client.get(r.headers["Location"]).text
    assert "Paga ora su server sicuro" not in page
    assert "Pagamento con bonifico bancario" in page
    # The details as a block to copy (issue 26): beneficiary, IBAN, amount, causale.
    details = page[page.index('id="transfer-details"') :]
    details = details[: details.index("</dl>")]
    assert "<dd>PEC Shop S.r.l.</dd>" in details
    assert '<code class="copy">IT60 X054 2811 1010 0000 0123 456</code>' in details
    assert f'<code class="copy">Ordine {order.number}</code>' in details
    # 5,00 + 9,90 + 15,00 = 29,90; IVA 6,578 → 6,58; total 36,48
    assert '<strong class="nowrap">€ 36,48</strong>' in details


def test_card_order_page_offers_the_secure_payment(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD", "FIRMA-R")
    r = confirm(client, checkout_token(client))
    page = client.get(r.headers["Location"])
    assert page.status_code == 200
    assert "Paga ora su server sicuro" in page.text
    assert "IBAN" not in page.text
    [order] = orders_of(dummy_customer.id)
    assert f'action="/ordini/{order.id}/paga"' in page.text
    assert f"Ordine n. {order.number}" in page.text
    assert order.number == f"2026-{order.id:06d}"
    assert 'id="order-total">€ 54,78' in page.text
    assert "Attivo, ogni anno" in page.text  # PEC (ngettext: never "ogni 1 anno")
    assert "Non disponibile" in page.text  # Firma Digitale


# --- confirm --------------------------------------------------------------------------------


def test_confirm_without_terms_is_refused(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    r = confirm(client, token, htmx=True, terms="")
    assert r.status_code == 422
    message = "Per confermare l'ordine devi accettare le condizioni generali di contratto."
    assert message in html.unescape(r.text)
    assert order_count(db) == 0
    assert len(customer_cart(dummy_customer.id).lines) == 1
    r = client.post("/checkout/conferma", data={"checkout_token": token})  # no field at all
    assert r.status_code == 422
    assert "<html" in r.text
    assert order_count(db) == 0


def test_confirm_without_payment_method_is_refused(client, db, catalogue, dummy_customer):
    fill_cart(client, catalogue, "PEC-STD")
    login(client)
    r = confirm(client, checkout_token(client), htmx=True)
    assert r.status_code == 422
    assert "Scegli un metodo di pagamento." in r.text
    assert order_count(db) == 0


def test_confirm_of_an_empty_cart(client, db, catalogue, dummy_customer):
    login(client)
    client.get("/checkout")  # creates the (empty) cart
    token = customer_cart(dummy_customer.id).checkout_token
    r = confirm(client, token, htmx=True)
    assert r.status_code == 422
    assert "Il carrello è vuoto." in r.text
    assert order_count(db) == 0


def test_confirm_refuses_a_product_no_longer_sold(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "SPID-PF")
    token = checkout_token(client)
    catalogue["products"]["SPID-PF"].active = False
    db.session.commit()
    r = confirm(client, token, htmx=True)
    assert r.status_code == 422
    assert "SPID Persona Fisica non è più disponibile" in r.text
    assert order_count(db) == 0


def test_prices_posted_by_the_browser_are_ignored(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD", "FIRMA-R")
    forged = dict(
        total_cents="1",
        subtotal_cents="1",
        net_cents="1",
        vat_cents="0",
        discount_cents="4489",
        yearly_price_cents="1",
        amount_cents="1",
        price="0,01",
        years="5",
        payment_method="bank_transfer",
        discount_code="BENVENUTO10",
    )
    r = confirm(client, checkout_token(client), **forged)
    assert r.status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert (order.subtotal_cents, order.discount_cents, order.net_cents) == (4490, 0, 4490)
    assert (order.vat_cents, order.total_cents) == (988, 5478)
    assert order.payment_method is PaymentMethod.CARD
    assert order.discount_code is None
    assert [line.years for line in order.lines] == [1, 1]


def test_totals_are_computed_at_confirm_time(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    assert "€ 6,10" in client.get("/checkout").text  # 5,00 + IVA as rendered
    catalogue["products"]["PEC-STD"].yearly_price_cents = 700
    db.session.commit()
    assert confirm(client, token).status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert order.lines[0].yearly_price_cents == 700
    assert (order.subtotal_cents, order.vat_cents, order.total_cents) == (700, 154, 854)


def test_double_submit_creates_one_order(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    first = confirm(client, token)
    second = confirm(client, token)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    third = confirm(client, token, htmx=True)
    assert third.status_code == 200
    assert third.headers["HX-Redirect"] == first.headers["Location"]
    [order] = orders_of(dummy_customer.id)
    assert first.headers["Location"] == f"/ordini/{order.id}"
    assert order.checkout_token == token


def test_the_cart_is_empty_after_the_order(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD", "SPID-PF")
    old = checkout_token(client)
    confirm(client, old)
    cart = customer_cart(dummy_customer.id)
    assert cart.lines == []
    assert cart.checkout_token != old
    assert '<span id="cart-badge" class="badge" aria-label="Prodotti nel carrello">0</span>' in (
        client.get("/").text
    )


@pytest.mark.parametrize("change", ["add", "remove", "years", "discount", "method"])
def test_stale_token_after_the_cart_changed_is_refused(
    client, db, catalogue, dummy_customer, change
):
    ready(client, catalogue, "PEC-STD", "FIRMA-R")
    token = checkout_token(client)
    line_id = customer_cart(dummy_customer.id).lines[0].id
    if change == "add":
        add(client, catalogue["products"]["SPID-PF"])
    elif change == "remove":
        client.post(f"/carrello/righe/{line_id}/rimuovi", headers=HX)
    elif change == "years":
        client.post(f"/checkout/righe/{line_id}/anni", data={"years": "2"}, headers=HX)
    elif change == "discount":
        client.post("/checkout/sconto", data={"code": "PEC5"}, headers=HX)
    else:
        choose_method(client, "bank_transfer")
    r = confirm(client, token, htmx=True)
    assert r.status_code == 422
    assert "Il carrello è cambiato nel frattempo" in r.text
    assert order_count(db) == 0
    fresh = customer_cart(dummy_customer.id).checkout_token
    assert fresh != token
    # The answer brings the new token and what changed, so what is confirmed is what is seen.
    assert f'name="checkout_token" value="{fresh}"' in r.text
    assert '<div id="checkout-items" hx-swap-oob="true">' in r.text
    assert '<div id="checkout-totals" hx-swap-oob="true">' in r.text
    assert confirm(client, fresh).status_code == 303


def test_choosing_the_same_method_again_keeps_the_token(client, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    choose_method(client, "card")
    assert confirm(client, token).status_code == 303


def test_a_token_from_another_customer_is_refused(
    client, app, db, catalogue, dummy_customer, create_customer
):
    create_customer(email="luisa@example.it", name="Luisa Bianchi")
    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    other = app.test_client()
    fill_cart(other, catalogue, "FIRMA-R")
    login(other, "luisa@example.it")
    choose_method(other)
    r = confirm(other, token, htmx=True)
    assert r.status_code == 422
    assert order_count(db) == 0


# --- orders ---------------------------------------------------------------------------------


def test_another_customers_order_is_404(
    client, app, db, catalogue, dummy_customer, create_customer
):
    ready(client, catalogue, "PEC-STD")
    location = confirm(client, checkout_token(client)).headers["Location"]
    create_customer(email="luisa@example.it", name="Luisa Bianchi")
    other = app.test_client()
    login(other, "luisa@example.it")
    assert other.get(location).status_code == 404
    assert other.get("/ordini/999999").status_code == 404
    assert other.post(f"{location}/paga").status_code == 404
    assert client.get(location).status_code == 200


def test_order_page_requires_login(client, db, catalogue, dummy_customer):
    ready(client, catalogue, "PEC-STD")
    location = confirm(client, checkout_token(client)).headers["Location"]
    client.post("/esci")
    r = client.get(location)
    assert r.status_code in (302, 303)
    assert urlsplit(r.headers["Location"]).path == "/accedi"


def test_simultaneous_double_submit_finds_the_order_of_the_other_request(
    client, db, monkeypatch, catalogue, dummy_customer
):
    """The second of two concurrent submits loses on the unique token and shows the first order."""
    from sqlalchemy.exc import IntegrityError

    from webapp.shop import checkout

    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    real = checkout.confirm_order
    calls = []

    def racing(cart, customer_id, checkout_token, terms_accepted, now, quoted=None):
        calls.append(checkout_token)
        if len(calls) == 1:
            # The other request commits its order first; this one's INSERT then collides.
            real(cart, customer_id, checkout_token, terms_accepted, now, quoted)
            db.session.commit()
            raise IntegrityError("INSERT INTO orders", {}, Exception("UNIQUE constraint failed"))
        return real(cart, customer_id, checkout_token, terms_accepted, now, quoted)

    monkeypatch.setattr(checkout, "confirm_order", racing)
    r = confirm(client, token)
    assert r.status_code == 303
    assert calls == [token, token]
    [order] = orders_of(dummy_customer.id)
    assert r.headers["Location"] == f"/ordini/{order.id}"


def test_twin_submit_that_sees_the_cart_already_spent_shows_the_order(
    client, db, monkeypatch, catalogue, dummy_customer
):
    """Between this request's reads the twin commits: the cart looks empty, the order exists."""
    from webapp.errors import CheckoutError
    from webapp.shop import checkout

    ready(client, catalogue, "PEC-STD")
    token = checkout_token(client)
    real = checkout.confirm_order

    def racing(cart, customer_id, checkout_token, terms_accepted, now, quoted=None):
        real(cart, customer_id, checkout_token, terms_accepted, now, quoted)
        db.session.commit()
        raise CheckoutError("Il carrello è vuoto.")

    monkeypatch.setattr(checkout, "confirm_order", racing)
    r = confirm(client, token)
    assert r.status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert r.headers["Location"] == f"/ordini/{order.id}"


# --- the service itself ---------------------------------------------------------------------


def _cart_of(customer, *products):
    cart = shop_cart.get_or_create_cart(customer.id, None)
    for product in products:
        shop_cart.add_product(cart, product.id)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    db.session.commit()
    return cart


@pytest.mark.parametrize(
    ("at", "price"),
    [
        (datetime(2031, 6, 14, 21, 59, tzinfo=UTC), 500),  # 23:59 on the 14th in Italy
        (datetime(2031, 6, 14, 22, 0, tzinfo=UTC), 800),  # midnight of the 15th in Italy
    ],
)
def test_confirm_prices_the_cart_on_the_day_in_italy_of_its_clock(
    catalogue, dummy_customer, at, price
):
    """The list price in force on the confirm's day in Italy (not the wall clock's, not UTC's)."""
    pec = catalogue["products"]["PEC-STD"]
    db.session.add(
        ProductPrice(product_id=pec.id, yearly_price_cents=800, effective_from=date(2031, 6, 15))
    )
    cart = _cart_of(dummy_customer, pec)
    order = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, at)
    [line] = order.lines
    assert (line.yearly_price_cents, line.list_cents, order.subtotal_cents) == (price,) * 3


def test_a_total_changed_since_the_page_places_nothing_and_says_the_new_one(
    db, catalogue, dummy_customer, now
):
    cart = _cart_of(dummy_customer, catalogue["products"]["PEC-STD"])
    token = cart.checkout_token
    assert checkout.price_cart(cart).quote.total_cents == 610  # what the page shows
    with pytest.raises(checkout.QuoteChanged) as refused:
        checkout.confirm_order(cart, dummy_customer.id, token, True, now, quoted_total_cents=500)
    assert refused.value.total_cents == 610  # 5,00 + IVA 22%
    assert order_count(db) == 0 and len(cart.lines) == 1
    checkout.renew_token(cart)  # the page shows the new total with a new token
    assert cart.checkout_token != token
    order = checkout.confirm_order(
        cart, dummy_customer.id, cart.checkout_token, True, now, quoted_total_cents=610
    )
    assert order.total_cents == 610


def test_the_immediate_start_is_recorded_once_and_only_while_the_order_awaits_payment(
    db, catalogue, dummy_customer, now
):
    pec = catalogue["products"]["PEC-STD"]
    cart = _cart_of(dummy_customer, pec)
    order = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)
    checkout.ask_immediate_start(order, now)
    checkout.ask_immediate_start(order, now + timedelta(minutes=5))  # the form sent again
    assert order.immediate_start_text == str(checkout.IMMEDIATE_START_TEXT)
    assert order.immediate_start_at == now
    cart = _cart_of(dummy_customer, pec)
    cancelled = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)
    orders.cancel_order(cancelled, now)
    checkout.ask_immediate_start(cancelled, now)
    assert (cancelled.immediate_start_text, cancelled.immediate_start_at) == (None, None)


def test_a_confirm_sent_twice_is_one_order_for_the_buyer_and_clock_of_the_first(
    db, catalogue, dummy_customer, now
):
    give_billing(dummy_customer, "public")  # a public administration: split payment
    cart = _cart_of(dummy_customer, catalogue["products"]["CONS-1"])
    token, at = cart.checkout_token, now + timedelta(hours=3)
    order = checkout.confirm_order(cart, dummy_customer.id, token, True, at)
    again = checkout.confirm_order(cart, dummy_customer.id, token, True, at + timedelta(minutes=1))
    assert again.id == order.id and order_count(db) == 1
    assert order.created_at == at
    assert order.buyer_type is CustomerType.PUBLIC and order.split_payment
    assert (order.net_cents, order.vat_cents, order.total_cents) == (5000, 1100, 5000)


def test_a_token_another_customer_already_confirmed_finds_not_their_order(
    db, catalogue, dummy_customer, create_customer, now
):
    pec = catalogue["products"]["PEC-STD"]
    cart = _cart_of(dummy_customer, pec)
    token = cart.checkout_token
    checkout.confirm_order(cart, dummy_customer.id, token, True, now)
    luisa = create_customer(email="luisa@example.it", name="Luisa Bianchi")
    assert checkout.order_for_token(luisa.id, token) is None
    with pytest.raises(CheckoutError, match="Il carrello è cambiato"):
        checkout.confirm_order(_cart_of(luisa, pec), luisa.id, token, True, now)
    assert order_count(db) == 1
