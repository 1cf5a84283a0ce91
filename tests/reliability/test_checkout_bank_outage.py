"""The bank's API unreachable when the customer comes back from the hosted page.

The payment is authorised at the bank, but the shop cannot ask: the order stays pending, the
bank's notification is answered 503; once the bank is back, the return and the notification
(racing each other) pay the order once, with one e-mail.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.reliability.conftest import LiveBank, dispose_bank, free_port
from tests.unit.bank_browser import BankBrowser
from webapp.clock import now_utc
from webapp.mailsink import MailSink
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Payment, PaymentStatus
from webapp.renewals.models import Service
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderStatus

pytestmark = pytest.mark.reliability


@pytest.fixture
def live_bank(app, bank_database_url):
    """The mock bank on a loopback port, reached by the shop over HTTP; notifications manual."""
    from webapp.bank import create_bank_app

    bank_app = create_bank_app(
        {
            "TESTING": True,
            "BANK_DATABASE_URL": bank_database_url,
            "BANK_SHARED_SECRET": app.config["BANK_SHARED_SECRET"],
            "BANK_MERCHANT_ID": app.config["BANK_MERCHANT_ID"],
            "SECRET_KEY": "bank-test",
            "BANK_NOTIFY_ENABLED": False,
        }
    )
    live = LiveBank(bank_app).start()
    app.extensions["gateway"].api_url = live.url  # plain HTTP, as in production
    yield live
    live.stop()
    dispose_bank(bank_app)


@pytest.fixture
def sink(app):
    """A real SMTP server the shop sends to after each commit."""
    from webapp.extensions import mail

    port = free_port()
    app.config.update(MAIL_SUPPRESS_SEND=False, MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    mail.init_app(app)
    mail_sink = MailSink(port=port).start()
    yield mail_sink
    with contextlib.suppress(Exception):
        mail_sink.stop()


def _deliver_notifications(bank_app, shop_client, now) -> int:
    """One round of the bank's notifier, its POSTs going to the shop's test client."""
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.notifier import deliver_due

    def post(url, data, headers, timeout):
        return shop_client.post(urlsplit(url).path, data=data, headers=headers)

    with bank_app.app_context():
        delivered = deliver_due(now, post=post)
        bank_db.session.remove()
    return delivered


def _state(db, order_id: int) -> tuple:
    db.session.rollback()
    order = db.session.get(Order, order_id)
    payments = db.session.scalars(
        select(Payment.status).where(Payment.order_id == order_id).order_by(Payment.id)
    ).all()
    services = db.session.scalar(select(func.count(Service.id)))
    emails = db.session.scalar(select(func.count(OutboxEmail.id)))
    return order.status, payments, services, emails


def test_return_while_the_bank_is_unreachable_pays_once_when_it_is_back(
    app, db, client, auth, dummy_customer, catalogue, live_bank, sink
):
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    for sku in ("PEC-STD", "FIRMA-R"):
        shop_cart.add_product(cart, catalogue["products"][sku].id)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    order = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now_utc())
    db.session.commit()
    auth.login()

    response = client.post(f"/ordini/{order.id}/paga")
    assert response.status_code == 303
    assert response.headers["Location"].startswith(live_bank.url + "/pay/")
    back = urlsplit(
        BankBrowser(live_bank.app).pay(response.headers["Location"], "4242424242424242")
    )

    live_bank.stop()  # authorised at the bank; the shop cannot ask it any more
    before = _state(db, order.id)
    assert before == (OrderStatus.PENDING_PAYMENT, [PaymentStatus.PENDING], 0, 0)
    for _ in range(2):  # the customer reloads the return page
        response = client.get(back.path, query_string=back.query)
        assert response.status_code == 303
        assert urlsplit(response.headers["Location"]).path == "/"
        assert _state(db, order.id) == before
    notifier = app.test_client()
    assert _deliver_notifications(live_bank.app, notifier, now_utc()) == 0  # shop answered 503
    assert _state(db, order.id) == before
    assert sink.messages == []

    live_bank.start()  # back on the same port
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def customer_returns() -> None:
        barrier.wait()
        results["return"] = client.get(back.path, query_string=back.query)

    def bank_notifies() -> None:
        barrier.wait()
        later = now_utc() + timedelta(minutes=5)  # past the notifier's backoff
        results["notify"] = _deliver_notifications(live_bank.app, notifier, later)

    threads = [threading.Thread(target=customer_returns), threading.Thread(target=bank_notifies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results["notify"] == 1
    assert results["return"].status_code == 303
    assert results["return"].headers["Location"].endswith(f"/ordini/{order.id}")

    paid = _state(db, order.id)
    assert paid == (OrderStatus.PAID, [PaymentStatus.SUCCEEDED], 2, 1)
    client.get(back.path, query_string=back.query)  # one more reload: nothing new
    assert _state(db, order.id) == paid
    assert [str(m["To"]) for m in sink.messages] == [dummy_customer.email]
    assert f"ordine {order.number}" in sink.messages[0]["Subject"]
