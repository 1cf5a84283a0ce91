"""The lean paths of the four measured htmx fragments (bench/fragments.py): how many statements
each sends, and that taking the short way changed nothing they must do.

The cart fragment is one Core statement (cart, lines, products, the price in force) plus the
customer's row when logged in, and is kept per process by what it shows; `current_user` is one
Core SELECT that still logs out a session from before the last "Esci". No timings here: speed
figures live in the bench.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
from flask import g
from sqlalchemy import event

from tests.unit.helpers import (
    HX,
    add,
    pending_card_order,
)
from tests.unit.renewal_fakes import make_card, make_service
from webapp import create_app
from webapp.account.services import end_sessions
from webapp.config import TestConfig
from webapp.extensions import db
from webapp.shop.customers import SessionCustomer
from webapp.shop.models import ProductPrice

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)


@contextmanager
def statements():
    """Every SQL statement sent inside the block (the session starts empty, as a request's)."""
    db.session.remove()
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@pytest.fixture
def frozen(monkeypatch, now):
    """The views' clock at the fixed `now` (the service expires after it)."""
    import webapp.account.area
    import webapp.payments.views
    import webapp.shop.views

    for module in (webapp.shop.views, webapp.payments.views, webapp.account.area):
        monkeypatch.setattr(module, "now_utc", lambda: now)


@pytest.fixture
def shopper(client, catalogue, dummy_customer, frozen):
    """Logged in, with a pending card order, a saved card, a service and two cart lines."""
    products = catalogue["products"]
    order = pending_card_order(client, products, dummy_customer.id)
    card = make_card(dummy_customer)
    service = make_service(dummy_customer, products["PEC-STD"], expires_at=EXPIRES, card=card)
    add(client, products["PEC-STD"])
    add(client, products["PEC-PRO"])
    return {"order": order.id, "card": card.id, "service": service.id}


def _cart_lines(html: str) -> int:
    return len(re.findall(r'<tr id="cart-line-\d+">', html))


# --- statements per fragment ---------------------------------------------------------------------


def test_anonymous_cart_fragment_is_one_statement(client, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    with statements() as sent:
        r = client.get("/carrello", headers=HX)
    assert r.status_code == 200 and _cart_lines(r.text) == 1
    assert sent == ["SELECT"]


def test_logged_in_cart_fragment_is_the_customer_and_the_cart(client, shopper):
    with statements() as sent:
        r = client.get("/carrello", headers=HX)
    assert _cart_lines(r.text) == 2
    assert sent == ["SELECT", "SELECT"]  # the customer (session version), the cart


def test_card_picker_reads_the_customer_then_order_and_cards_at_once(client, shopper):
    with statements() as sent:
        r = client.post(
            f"/portale-pagamenti/ordini/{shopper['order']}/scelta",
            data={"choice": str(shopper["card"])},
            headers=HX,
        )
    assert r.status_code == 200 and "Addebiteremo" in r.text
    assert sent == ["SELECT", "SELECT"]


def test_card_picker_is_kept_while_what_it_shows_is_the_same(app, client, shopper, dummy_customer):
    """The same choice in the same form is served again; a new card or choice is rendered."""
    url = f"/portale-pagamenti/ordini/{shopper['order']}/scelta"
    form = {"choice": str(shopper["card"]), "attempt": "tentativo-1"}
    for _ in range(2):  # the first one gives the session its CSRF token, the second is kept
        first = client.post(url, data=form, headers=HX).text
    kept = [k for k in app.extensions["webapp.fragments"] if k[0] == "payments/_card_picker.html"]
    assert len(kept) == 1 and client.post(url, data=form, headers=HX).text == first
    assert 'name="attempt" value="tentativo-1"' in first  # the form's own attempt, kept
    new = make_card(dummy_customer, last4="5555")
    assert "•••• 5555" not in first and "•••• 5555" in client.post(url, data=form, headers=HX).text
    chosen = client.post(url, data={**form, "choice": str(new.id)}, headers=HX).text
    assert re.search(rf'value="{new.id}"\s+checked', chosen)
    other_attempt = client.post(url, data={**form, "attempt": "tentativo-2"}, headers=HX).text
    assert 'name="attempt" value="tentativo-2"' in other_attempt


def test_card_picker_of_another_customers_order_is_not_found(client, shopper, create_customer):
    other = create_customer(email="luigi@example.it", name="Luigi Verdi")
    make_card(other, last4="9999")
    url = f"/portale-pagamenti/ordini/{shopper['order']}/scelta"
    with client.session_transaction() as session:
        session["_user_id"] = other.get_id()  # logged in as someone else
    assert client.post(url, data={"choice": "new"}, headers=HX).status_code == 404


def test_card_picker_without_saved_cards_offers_a_new_one(client, shopper):
    db.session.execute(db.text("UPDATE saved_card SET removed_at = created_at"))
    db.session.commit()
    url = f"/portale-pagamenti/ordini/{shopper['order']}/scelta"
    r = client.post(url, data={"choice": "new"}, headers=HX)
    assert r.status_code == 200 and "Nuova carta di pagamento" in r.text
    assert "•••• " not in r.text
    r = client.post(url, data={"choice": str(shopper["card"])}, headers=HX)
    assert r.status_code == 422 and "Carta non trovata." in r.text


def test_frequency_is_one_update_and_the_reads_of_its_row(client, shopper):
    with statements() as sent:
        r = client.post(
            f"/area-clienti/servizi/{shopper['service']}/frequenza",
            data={"frequency_years": "3"},
            headers=HX,
        )
    assert r.status_code == 200
    assert "Frequenza di rinnovo aggiornata: ogni 3 anni" in r.text
    assert '<option value="3" selected>' in r.text
    # The customer, then the row (service, product, card, renewal, billing data, price of the
    # day and the card menu) in one statement, then the UPDATE: nothing read again after it.
    assert sent == ["SELECT", "SELECT", "UPDATE"]
    with statements() as again:  # the value it has now: nothing to write
        r = client.post(
            f"/area-clienti/servizi/{shopper['service']}/frequenza",
            data={"frequency_years": "3"},
            headers=HX,
        )
    assert r.status_code == 200 and '<option value="3" selected>' in r.text
    assert again == ["SELECT", "SELECT"]
    db.session.expire_all()
    from webapp.renewals.models import Service

    assert db.session.get(Service, shopper["service"]).frequency_years == 3


def test_frequency_row_is_kept_while_what_it_shows_is_the_same(app, client, db, shopper, now):
    """The same frequency again is served from the cache; a renewal that failed meanwhile, or
    another frequency, is rendered."""
    from webapp.renewals.models import Renewal, RenewalStatus

    url = f"/area-clienti/servizi/{shopper['service']}/frequenza"
    for _ in range(2):  # the first one gives the session its CSRF token, the second is kept
        first = client.post(url, data={"frequency_years": "2"}, headers=HX).text
    kept = [k for k in app.extensions["webapp.fragments"] if k[0] == "area/_service.html"]
    assert (
        len(kept) == 1 and client.post(url, data={"frequency_years": "2"}, headers=HX).text == first
    )
    assert '<option value="2" selected>' in first and "Rinnovo non riuscito" not in first
    db.session.add(
        Renewal(
            service_id=shopper["service"],
            period_expires_at=EXPIRES,
            status=RenewalStatus.FAILED,
            failure_reason="Fondi insufficienti.",
        )
    )
    db.session.commit()
    failed = client.post(url, data={"frequency_years": "2"}, headers=HX).text
    assert "Rinnovo non riuscito: Fondi insufficienti." in failed
    other = client.post(url, data={"frequency_years": "4"}, headers=HX).text
    assert '<option value="4" selected>' in other and "ogni 4 anni" in other


def test_frequency_out_of_range_changes_nothing(client, db, shopper):
    url = f"/area-clienti/servizi/{shopper['service']}/frequenza"
    refused = client.post(url, data={"frequency_years": "9"}, headers=HX)
    assert refused.status_code == 422
    assert "Frequenza di rinnovo non valida per PEC Standard" in refused.text
    assert '<option value="1" selected>' in refused.text
    from webapp.renewals.models import Service

    db.session.expire_all()
    assert db.session.get(Service, shopper["service"]).frequency_years == 1


# --- the session check on the short way ----------------------------------------------------------


def test_current_user_is_a_plain_row_with_the_session_version(app, dummy_customer):
    from webapp.shop.customers import load_session_customer

    user = load_session_customer(dummy_customer.get_id())
    assert isinstance(user, SessionCustomer)
    assert (user.id, user.name, user.tax_code) == (
        dummy_customer.id,
        "Mario Rossi",
        "RSSMRA85T10A562S",
    )
    assert user.get_id() == dummy_customer.get_id() and user.is_authenticated
    assert (
        load_session_customer(f"{dummy_customer.id}:{dummy_customer.session_version + 1}") is None
    )


def test_a_session_from_before_esci_is_logged_out_on_the_fragments(client, shopper):
    assert _cart_lines(client.get("/carrello", headers=HX).text) == 2
    end_sessions(_customer_id(client))  # "Esci" from another device
    db.session.commit()
    # The same cookie: the cart fragment is the visitor's (empty), the area asks to log in.
    assert _cart_lines(client.get("/carrello", headers=HX).text) == 0
    r = client.post(
        f"/portale-pagamenti/ordini/{shopper['order']}/scelta",
        data={"choice": str(shopper["card"])},
        headers=HX,
    )
    assert r.headers["HX-Redirect"].startswith("/accedi")
    r = client.post(
        f"/area-clienti/servizi/{shopper['service']}/frequenza",
        data={"frequency_years": "2"},
        headers=HX,
    )
    assert r.headers["HX-Redirect"].startswith("/accedi")


def _customer_id(client) -> int:
    with client.session_transaction() as session:
        return int(session["_user_id"].partition(":")[0])


@pytest.mark.parametrize("user_id", ["1", "1:x", "x:0", "1:0:0", "99999999999999999999:0", ""])
def test_malformed_user_ids_are_anonymous(app, user_id):
    from webapp.shop.customers import load_session_customer

    assert load_session_customer(user_id) is None


# --- the cached cart fragment shows what the cart is now -----------------------------------------


def test_cart_fragment_shows_a_price_change(client, db, catalogue, now):
    pec = catalogue["products"]["PEC-STD"]
    add(client, pec)
    for _ in range(2):  # the first one gives the session its CSRF token, the second is kept
        before = client.get("/carrello", headers=HX).text
    assert "€ 5,00" in before  # PEC Standard, 5,00 a year
    db.session.add(
        ProductPrice(product_id=pec.id, yearly_price_cents=700, effective_from=date(2020, 1, 1))
    )
    db.session.commit()
    after = client.get("/carrello", headers=HX).text
    assert "€ 7,00" in after and "€ 5,00" not in after


def test_cart_fragment_shows_a_removed_line(client, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    add(client, catalogue["products"]["PEC-PRO"])
    for _ in range(2):  # the first one gives the session its CSRF token, the second is kept
        first = client.get("/carrello", headers=HX).text
    line_id = re.search(r'<tr id="cart-line-(\d+)">', first).group(1)
    client.post(f"/carrello/righe/{line_id}/rimuovi", headers=HX)
    assert _cart_lines(client.get("/carrello", headers=HX).text) == 1


def test_the_cache_serves_only_its_own_session(app, catalogue):
    """Two visitors with the same products: each fragment carries its own session's token."""
    pages = []
    for _ in range(2):
        g.pop("csrf_token", None)  # the test's app context outlives requests: so would g's token
        visitor = app.test_client()
        add(visitor, catalogue["products"]["PEC-STD"])
        pages.append(visitor.get("/carrello", headers=HX).text)
        assert visitor.get("/carrello", headers=HX).text == pages[-1]  # served again
    tokens = [re.search(r'name="csrf_token" value="([^"]+)"', p).group(1) for p in pages]
    assert tokens[0] != tokens[1]


def test_the_cache_can_be_turned_off(database_url, catalogue):
    app = create_app(
        TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, "FRAGMENT_CACHE_SIZE": 0}
    )
    with app.app_context():
        visitor = app.test_client()
        add(visitor, catalogue["products"]["PEC-STD"])
        visitor.get("/carrello", headers=HX)
        assert "webapp.fragments" not in app.extensions
        db.session.remove()
        db.engine.dispose()


# --- per-request machinery -----------------------------------------------------------------------


def test_a_dead_idle_connection_is_replaced(app):
    """No ping per checkout: a connection idle for long is pinged, and replaced if dead."""
    from webapp.extensions import ping_idle_connections

    engine = db.engine
    ping_idle_connections(engine, 0)
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
    dbapi.close()  # what a server restart does to a pooled connection
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        assert conn.connection.dbapi_connection is not dbapi


def test_global_rate_limits_still_apply_to_every_route(database_url):
    """The limiter's per-request hook is dropped only when no limit covers all routes."""
    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_DEFAULT": "2 per minute",
        },
    )
    client = app.test_client()
    with app.app_context():
        statuses = [client.get("/condizioni-generali").status_code for _ in range(3)]
        db.session.remove()
        db.engine.dispose()
    assert statuses == [200, 200, 429]


def test_every_answer_has_a_request_id_and_the_security_headers(client, caplog):
    with caplog.at_level("INFO", logger="webapp.access"):
        r = client.get("/carrello", headers={**HX, "X-Request-ID": "abc123"})
    assert r.headers["X-Request-ID"] == "abc123"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    [line] = [rec for rec in caplog.records if rec.name == "webapp.access"]
    assert (line.method, line.path, line.status, line.request_id) == (
        "GET",
        "/carrello",
        200,
        "abc123",
    )
