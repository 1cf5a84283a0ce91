"""CSRF on: every state-changing form of the shop and of the bank's pages refuses a request
without its token, with a forged one, or with another session's; nothing changes. The same
request with the right token goes through (so the refusal is the token's doing)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import g
from flask.testing import FlaskClient
from hypothesis import given
from sqlalchemy import select

from tests.reliability import fuzz
from tests.reliability.shopworld import PASSWORD, World
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.renewals.models import Service
from webapp.shop.models import Cart, CartLine, PaymentMethod, Product
from webapp.shop.order_models import Order, OrderStatus

pytestmark = pytest.mark.reliability

TOKEN = re.compile(r"""(?:"X-CSRFToken": "|name="csrf_token" (?:type="hidden" )?value=")([^"]+)""")


def _token(client: FlaskClient, page: str = "/") -> str:
    """The client's CSRF token as its page shows it."""
    # The app context stays pushed across the test's requests: Flask-WTF caches the token in g.
    g.pop("csrf_token", None)
    response = client.get(page)
    assert response.status_code == 200, page
    return TOKEN.search(response.text).group(1)


def _logged_in(client: FlaskClient) -> bool:
    with client.session_transaction() as session:
        return "_user_id" in session


def _mine(world: World) -> dict[str, object]:
    """The logged-in customer's objects, by role."""
    me = world.attacker.id
    db.session.rollback()
    cart = db.session.scalar(select(Cart).where(Cart.customer_id == me))
    card_order = db.session.scalar(
        select(Order)
        .where(
            Order.customer_id == me,
            Order.payment_method == PaymentMethod.CARD,
            Order.status != OrderStatus.CANCELLED,
        )
        .order_by(Order.status.desc(), Order.id)
    )
    cards = db.session.scalars(
        select(SavedCard).where(SavedCard.customer_id == me).order_by(SavedCard.id)
    ).all()
    pec = db.session.scalar(
        select(Service).join(Product).where(Service.customer_id == me, Product.sku == "PEC-STD")
    )
    promo_line = db.session.scalar(
        select(CartLine)
        .join(Product)
        .where(CartLine.cart_id == cart.id, Product.sku == "PEC-PROMO")
    ) or CartLine(id=0)
    product = db.session.scalar(select(Product.id).where(Product.sku == "SPID-PF"))
    return dict(
        cart=cart,
        order=card_order,
        good=cards[0],
        spare=cards[3],
        pec=pec,
        line=promo_line,
        product=product,
    )


# (path, form) of each state-changing form of the logged-in customer.
FORMS: dict[str, Callable[[dict], tuple[str, dict]]] = {
    "add to cart": lambda m: (f"/carrello/aggiungi/{m['product']}", {}),
    "years": lambda m: (f"/checkout/righe/{m['line'].id}/anni", {"years": "2"}),
    "remove line": lambda m: (f"/carrello/righe/{m['line'].id}/rimuovi", {}),
    "payment method": lambda m: ("/checkout/metodo", {"payment_method": "bank_transfer"}),
    "discount": lambda m: ("/checkout/sconto", {"code": "BENVENUTO10"}),
    "remove discount": lambda m: ("/checkout/sconto/rimuovi", {}),
    "confirm": lambda m: (
        "/checkout/conferma",
        {"checkout_token": m["cart"].checkout_token, "terms": "1"},
    ),
    "pay order": lambda m: (f"/ordini/{m['order'].id}/paga", {}),
    "portal select": lambda m: (
        f"/portale-pagamenti/ordini/{m['order'].id}/scelta",
        {"choice": str(m["good"].id)},
    ),
    "portal proceed": lambda m: (
        f"/portale-pagamenti/ordini/{m['order'].id}/procedi",
        {"choice": str(m["good"].id), "amount_cents": str(m["order"].total_cents), "attempt": "a"},
    ),
    "auto-renew off": lambda m: (
        f"/area-clienti/servizi/{m['pec'].id}/rinnovo-automatico",
        {"auto_renew": "0"},
    ),
    "frequency": lambda m: (
        f"/area-clienti/servizi/{m['pec'].id}/frequenza",
        {"frequency_years": "3"},
    ),
    "rinnova": lambda m: (f"/area-clienti/servizi/{m['pec'].id}/rinnova", {"years": "1"}),
    "service card": lambda m: (
        f"/area-clienti/servizi/{m['pec'].id}/carta",
        {"card_id": str(m["good"].id)},
    ),
    "remove card": lambda m: (f"/area-clienti/carte/{m['spare'].id}/rimuovi", {}),
    "add card": lambda m: ("/area-clienti/carte/nuova", {}),
    "log out": lambda m: ("/esci", {}),
}


@fuzz.FUZZ
@given(forged=fuzz.junk().map(lambda s: s.replace("\r", "").replace("\n", "")[:500]))
def test_shop_forms_refuse_missing_and_forged_tokens(world: World, forged) -> None:
    """Every form, without a token, with a forged one, with another session's: 400, no change."""
    app = world.client.application
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        mine = _mine(world)
        other = _token(app.test_client())  # a valid token, of another session
        before = world.snapshot()
        for name, make in FORMS.items():
            path, form = make(mine)
            for token in (None, forged, other):
                data = form if token is None else {**form, "csrf_token": token}
                headers = {} if token is None else {"X-CSRFToken": token, "HX-Request": "true"}
                response = world.client.post(path, data=data, headers=headers)
                assert response.status_code == 400, (name, token, response.status_code)
                assert _logged_in(world.client)
        after = world.snapshot()
        fuzz.assert_unchanged(before[0], after[0], {"side": "shop"})
        fuzz.assert_unchanged(before[1], after[1], {"side": "bank"})
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_shop_forms_accept_the_right_token(world: World) -> None:
    """The control: with its session's token each form goes through (log out last)."""
    app = world.client.application
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        token = _token(world.client)
        for name, make in FORMS.items():
            path, form = make(_mine(world))
            response = world.client.post(path, data={**form, "csrf_token": token})
            assert response.status_code in (200, 303), (name, response.status_code)
        assert not _logged_in(world.client)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


@pytest.mark.parametrize(
    ("url", "form"),
    [
        ("/accedi", {"email": "attaccante@example.it", "password": PASSWORD}),
        (
            "/registrati",
            {
                "name": "Nuovo Cliente",
                "email": "nuovo@example.it",
                "tax_code": "RSSMRA85T10A562S",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
        ),
    ],
)
def test_login_and_registration_refuse_a_missing_token(world: World, url, form) -> None:
    app = world.client.application
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        visitor = app.test_client()
        before = world.snapshot()[0]
        for token in (None, "forged", _token(app.test_client(), url)):
            data = form if token is None else {**form, "csrf_token": token}
            assert visitor.post(url, data=data).status_code == 400, token
            assert world.snapshot()[0] == before
            assert not _logged_in(visitor)
        token = _token(visitor, url)
        assert visitor.post(url, data={**form, "csrf_token": token}).status_code == 303
        assert _logged_in(visitor)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_bank_pages_refuse_a_missing_token(bank_database_url) -> None:
    """The bank's card form, confirmation, OTP and app decision need the page's token."""
    from tests.reliability.conftest import SECRET, dispose_bank
    from tests.reliability.test_bad_input_bank import _payment, _state
    from webapp.bank import create_bank_app
    from webapp.bank.extensions import db as bank_db

    bank_app = create_bank_app(
        {
            "TESTING": True,
            "BANK_DATABASE_URL": bank_database_url,
            "BANK_SHARED_SECRET": SECRET,
            "BANK_NOTIFY_ENABLED": False,
            "SECRET_KEY": "csrf",
        }
    )
    try:
        with bank_app.app_context():
            created = _payment(None, confirm=False).id
            summary = _payment("4242424242424242", confirm=False).id
            sms = _payment("4111111111111111", confirm=True)
            sms_id, code = sms.id, sms.otp_code
            app_id = _payment("5555555555554444", confirm=True).id
            bank_db.session.commit()
        card = {
            "holder": "Mario Rossi",
            "number": "4242424242424242",
            "exp_month": "12",
            "exp_year": "2035",
            "cvv": "123",
        }
        posts = [
            (f"/pay/{created}", card),
            (f"/pay/{summary}/confirm", {}),
            (f"/pay/{sms_id}/otp", {"otp": code}),
            (f"/app/{app_id}/approve", {}),
        ]
        browser = bank_app.test_client()
        for path, form in posts:
            before = _state(bank_app)[0]
            for token in (None, "forged"):
                data = form if token is None else {**form, "csrf_token": token}
                assert browser.post(path, data=data).status_code == 400, path
                assert _state(bank_app)[0] == before, path
        token = TOKEN.search(browser.get(f"/pay/{created}").text).group(1)
        for path, form in posts:  # the control: with the token each step goes through
            assert browser.post(path, data={**form, "csrf_token": token}).status_code == 303
    finally:
        dispose_bank(bank_app)
