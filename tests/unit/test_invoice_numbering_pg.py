"""Gap-free invoice numbers under concurrent payments: PostgreSQL only (real row locks)."""

from __future__ import annotations

import secrets
import threading

import pytest
from sqlalchemy import select

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import confirmed_order, give_billing
from webapp.invoicing.models import Invoice, InvoiceCounter
from webapp.payments.models import Payment, PaymentChannel
from webapp.payments.services import succeed_payment
from webapp.shop.models import Order

pytestmark = pytest.mark.skipif(
    not PG_URL,
    reason="needs PostgreSQL (scripts/with-postgres.sh): SQLite serialises every writer, so "
    "concurrent payers cannot race there",
)

PAYERS = 10


def test_parallel_payers_get_numbers_one_to_n_and_rollbacks_leave_no_gap(
    app, db, dummy_customer, catalogue, now
):
    give_billing(dummy_customer, "private")
    order_ids = [
        confirmed_order(dummy_customer, catalogue["products"], now).id for _ in range(PAYERS)
    ]
    rolled_back = set(order_ids[1::3])  # every third payer's transaction fails after invoicing
    start = threading.Barrier(PAYERS)
    errors: list[BaseException] = []

    def payer(order_id: int) -> None:
        try:
            with app.app_context():  # its own session and connection
                order = db.session.get(Order, order_id)
                payment = Payment(
                    order_id=order.id,
                    order=order,
                    channel=PaymentChannel.HOSTED_PAGE,
                    amount_cents=order.total_cents,
                    idempotency_key=secrets.token_hex(8),
                )
                db.session.add(payment)
                db.session.flush()
                start.wait(timeout=30)
                succeed_payment(payment, None, now)  # order_paid: the invoice is numbered here
                if order_id in rolled_back:
                    db.session.rollback()
                else:
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=payer, args=(oid,)) for oid in order_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    db.session.expire_all()
    committed = PAYERS - len(rolled_back)
    numbers = db.session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
    assert numbers == list(range(1, committed + 1))
    assert db.session.scalar(select(InvoiceCounter.last).where(InvoiceCounter.year == 2026)) == (
        committed
    )
    invoiced = set(db.session.scalars(select(Invoice.order_id)))
    assert invoiced == set(order_ids) - rolled_back
