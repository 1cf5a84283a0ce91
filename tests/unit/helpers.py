"""Small helpers shared by the shop's unit tests (plain functions, not fixtures)."""

from __future__ import annotations

import re
from datetime import datetime

from flask.testing import FlaskClient

HX = {"HX-Request": "true"}
TOKEN_RE = re.compile(r'name="checkout_token" value="([^"]+)"')


def freeze_views(monkeypatch, now: datetime) -> None:
    """Make the views read `now` from the clock, so codes seeded around `now` are valid."""
    import webapp.payments.views
    import webapp.shop.views

    for module in (webapp.shop.views, webapp.payments.views):
        monkeypatch.setattr(module, "now_utc", lambda: now)


def login(client: FlaskClient, email: str = "mario@example.it", password: str = "password123"):
    """Log in through the form; fails the test when the login is refused."""
    response = client.post("/accedi", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    return response


def add(client: FlaskClient, product, htmx: bool = False):
    """Put one product in the visitor's cart."""
    response = client.post(f"/carrello/aggiungi/{product.id}", headers=HX if htmx else {})
    assert response.status_code in (200, 303), response.text
    return response


def checkout_token(client: FlaskClient) -> str:
    """The checkout token of the confirm form as the checkout page renders it now."""
    page = client.get("/checkout")
    assert page.status_code == 200, page.text
    return TOKEN_RE.search(page.text).group(1)


def choose_method(client: FlaskClient, method: str = "card"):
    response = client.post("/checkout/metodo", data={"payment_method": method}, headers=HX)
    assert response.status_code == 200, response.text
    return response


def customer_cart(customer_id: int):
    """The customer's cart row, read fresh from the database."""
    from webapp.extensions import db
    from webapp.shop.cart import get_cart

    db.session.expire_all()
    return get_cart(customer_id, None)


def orders_of(customer_id: int) -> list:
    from webapp.extensions import db
    from webapp.shop.orders import list_orders

    db.session.expire_all()
    return list_orders(customer_id)


def confirm(client: FlaskClient, token: str, htmx: bool = False, **extra):
    """Post the confirm form with the terms accepted (unless terms='' is given)."""
    data = {"checkout_token": token, "terms": "1", **extra}
    return client.post("/checkout/conferma", data=data, headers=HX if htmx else {})


def confirmation_context() -> dict:
    """What the payment confirmation template needs, for an e-mail that is only counted."""
    from types import SimpleNamespace

    order = SimpleNamespace(
        number="2026-000001",
        lines=[],
        subtotal_cents=0,
        net_cents=0,
        discount_cents=0,
        vat_cents=0,
        total_cents=0,
        discount_code=None,
    )
    return dict(
        customer=SimpleNamespace(name="Mario"),
        order=order,
        card=None,
        services=[],
        renewing=[],
        shop_url="http://x",
    )


def pending_card_order(client: FlaskClient, products, customer_id: int):
    """Log in, buy SPID-PF by card and confirm: the customer's order waiting for payment."""
    add(client, products["SPID-PF"])
    login(client)
    choose_method(client, "card")
    confirm(client, checkout_token(client))
    [order] = orders_of(customer_id)
    return order
