"""Signed notifications to the shop: outbox, delivery, retries with backoff, the thread."""

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from webapp.bank.extensions import db
from webapp.bank.models import Notification
from webapp.bank.notifier import MAX_ATTEMPTS, backoff, deliver_due
from webapp.signing import verify_request

SECRET = "test-bank-secret"
NOTIFY_URL = "http://shop.test/pagamenti/notifica"
CARD_FRICTIONLESS = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"


class FakeResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class FakeShop:
    """A post callable that records requests and answers with the queued status codes."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, url: str, *, data: bytes, headers: dict[str, str], timeout: float):
        self.requests.append({"url": url, "data": data, "headers": headers, "timeout": timeout})
        status = self.statuses.pop(0) if self.statuses else 200
        if isinstance(status, Exception):
            raise status
        return FakeResponse(status)


def notes(app) -> list[Notification]:
    with app.app_context():
        rows = db.session.scalars(select(Notification)).all()
        db.session.expunge_all()
        return list(rows)


def deliver(app, now, post) -> int:
    with app.app_context():
        return deliver_due(now, post=post)


@pytest.fixture
def paid(customer, create_payment) -> str:
    """A frictionless payment with a notify_url, authorised at the fixed clock time."""
    pid = create_payment(notify_url=NOTIFY_URL)
    customer.pay(pid, CARD_FRICTIONLESS)
    return pid


def test_final_status_queues_one_notification(app, paid) -> None:
    [note] = notes(app)
    assert (note.payment_id, note.url, note.attempts, note.delivered_at) == (
        paid,
        NOTIFY_URL,
        0,
        None,
    )


def test_no_notification_without_notify_url(app, customer, create_payment) -> None:
    pid = create_payment(notify_url=None)
    customer.pay(pid, CARD_FRICTIONLESS)
    assert notes(app) == []


def test_no_notification_before_the_final_status(app, customer, create_payment) -> None:
    pid = create_payment(notify_url=NOTIFY_URL)
    customer.pay(pid, "4111 1111 1111 1111")  # now waiting for the OTP
    assert notes(app) == []


def test_delivery_is_signed_and_carries_the_outcome(app, paid, clock) -> None:
    shop = FakeShop(200)
    assert deliver(app, clock.now, shop) == 1
    [request] = shop.requests
    assert request["url"] == NOTIFY_URL
    assert json.loads(request["data"]) == {
        "payment_id": paid,
        "order_ref": "ORD-0001",
        "status": "authorised",
        "amount_cents": 123456,
        "currency": "EUR",
    }
    verify_request(
        SECRET,
        "POST",
        "/pagamenti/notifica",
        request["data"],
        request["headers"],
        now=int(time.time()),
    )
    assert request["headers"]["X-Merchant-Id"] == "pec-shop"
    [note] = notes(app)
    assert note.delivered_at == clock.now and note.attempts == 1


def test_declined_payment_is_notified_too(app, customer, create_payment, clock) -> None:
    pid = create_payment(notify_url=NOTIFY_URL)
    customer.pay(pid, CARD_DECLINED)
    shop = FakeShop(204)
    deliver(app, clock.now, shop)
    body = json.loads(shop.requests[0]["data"])
    assert (body["payment_id"], body["status"]) == (pid, "declined")


def test_not_sent_again_after_success(app, paid, clock) -> None:
    shop = FakeShop(200)
    deliver(app, clock.now, shop)
    for minutes in (1, 60, 6000):
        assert deliver(app, clock.now + timedelta(minutes=minutes), shop) == 0
    assert len(shop.requests) == 1


def test_failure_is_retried_with_backoff(app, paid, clock) -> None:
    t0 = clock.now
    shop = FakeShop(500, ConnectionError("down"), 200)
    assert deliver(app, t0, shop) == 0
    [note] = notes(app)
    assert (note.attempts, note.next_attempt_at) == (1, t0 + backoff(1))
    assert note.last_error == "HTTP 500"
    assert deliver(app, t0 + timedelta(milliseconds=500), shop) == 0  # not due yet
    assert len(shop.requests) == 1
    t1 = t0 + timedelta(seconds=1)
    assert deliver(app, t1, shop) == 0  # the connection error
    [note] = notes(app)
    assert (note.attempts, note.next_attempt_at) == (2, t1 + timedelta(seconds=2))
    assert note.last_error == "ConnectionError"
    assert deliver(app, t1 + timedelta(seconds=2), shop) == 1
    assert len(shop.requests) == 3
    assert notes(app)[0].delivered_at == t1 + timedelta(seconds=2)


def test_backoff_doubles() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4, 9)] == [1, 2, 4, 8, 256]


def test_gives_up_after_ten_tries(app, paid, clock) -> None:
    shop = FakeShop(*[503] * 20)
    now = clock.now
    for _ in range(15):
        deliver(app, now, shop)
        now += timedelta(hours=1)
    assert len(shop.requests) == MAX_ATTEMPTS == 10
    [note] = notes(app)
    assert note.gave_up_at is not None and note.delivered_at is None


def test_leased_row_is_not_sent_twice(app, paid, clock) -> None:
    """A second deliverer running while a POST is in flight does not send it again."""
    inner = FakeShop(200)

    def slow_post(url: str, **kw: Any):
        assert deliver(app, clock.now, inner) == 0  # re-entrant round: row is leased
        return inner(url, **kw)

    assert deliver(app, clock.now, slow_post) == 1
    assert len(inner.requests) == 1


def test_notifier_thread_delivers_after_commit(make_app, customer_factory, clock) -> None:
    sent = threading.Event()
    received: list[bytes] = []

    def post(url: str, *, data: bytes, headers: dict[str, str], timeout: float):
        received.append(data)
        sent.set()
        return FakeResponse(200)

    app = make_app(BANK_NOTIFY_ENABLED=True, BANK_NOTIFY_POST=post)
    assert app.extensions["bank_notifier"].is_alive()
    customer, create_payment = customer_factory(app)
    pid = create_payment(notify_url=NOTIFY_URL)
    customer.pay(pid, CARD_FRICTIONLESS)
    assert sent.wait(10), "the notifier thread sent nothing"
    assert json.loads(received[0])["payment_id"] == pid
