"""Gap-free invoice numbers under concurrent payments: PostgreSQL only (real row locks)."""

from __future__ import annotations

import secrets
import threading

import pytest
from sqlalchemy import select

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import confirmed_order, give_billing, hosted_payment
from webapp.extensions import db as _db
from webapp.invoicing.batch import issue_invoices
from webapp.invoicing.models import Invoice, InvoiceCounter
from webapp.payments.events import PaidOrder
from webapp.payments.models import Payment, PaymentChannel
from webapp.payments.settlement import succeed_payment
from webapp.shop.order_models import Order

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
                payment = hosted_payment(db.session.get(Order, order_id))
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
    _run_together(threads, errors)
    committed = PAYERS - len(rolled_back)
    _assert_numbered_one_to(committed)
    invoiced = set(db.session.scalars(select(Invoice.order_id)))
    assert invoiced == set(order_ids) - rolled_back


BATCHES = 3
PER_BATCH = 4


def test_parallel_batches_and_payers_share_one_series_and_a_rollback_leaves_no_gap(
    app, db, dummy_customer, catalogue, now
):
    """issue_invoices takes a run of n numbers with one counter UPDATE: batches and per-row
    payers at the same instant interleave runs, and a rolled-back batch gives its run back."""
    give_billing(dummy_customer, "private")
    orders = [
        confirmed_order(dummy_customer, catalogue["products"], now)
        for _ in range(BATCHES * PER_BATCH + 2)
    ]
    paid = []
    for order in orders[: BATCHES * PER_BATCH]:  # paid set-based, as a renewal batch does
        payment = Payment(
            order_id=order.id,
            channel=PaymentChannel.RENEWAL,
            amount_cents=order.total_cents,
            idempotency_key=secrets.token_hex(8),
        )
        db.session.add(payment)
        db.session.flush()
        paid.append(PaidOrder(order.id, payment.id))
    db.session.commit()
    batches = [paid[i * PER_BATCH : (i + 1) * PER_BATCH] for i in range(BATCHES)]
    singles = [o.id for o in orders[BATCHES * PER_BATCH :]]
    start = threading.Barrier(BATCHES + len(singles))
    errors: list[BaseException] = []

    def batch_payer(batch: list[PaidOrder], roll_back: bool) -> None:
        try:
            with app.app_context():
                start.wait(timeout=30)
                assert issue_invoices(batch, now) == len(batch)
                if roll_back:
                    db.session.rollback()
                else:
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def single_payer(order_id: int) -> None:
        try:
            with app.app_context():
                payment = hosted_payment(db.session.get(Order, order_id))
                start.wait(timeout=30)
                succeed_payment(payment, None, now)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=batch_payer, args=(batch, i == 1))
        for i, batch in enumerate(batches)
    ] + [threading.Thread(target=single_payer, args=(oid,)) for oid in singles]
    _run_together(threads, errors)
    committed = (BATCHES - 1) * PER_BATCH + len(singles)
    _assert_numbered_one_to(committed)
    invoiced = set(db.session.scalars(select(Invoice.order_id)))
    rolled_back = {p.order_id for p in batches[1]}
    assert invoiced == {o.id for o in orders} - rolled_back
    # A replay of a committed batch issues nothing more (one invoice per order).
    assert issue_invoices(batches[0], now) == 0


def _run_together(threads: list[threading.Thread], errors: list[BaseException]) -> None:
    """Start the threads, wait for them, fail with what any of them raised."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    _db.session.expire_all()


def _assert_numbered_one_to(committed: int) -> None:
    """The committed invoices hold the numbers 1..committed, and the year's counter says so."""
    numbers = _db.session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
    assert numbers == list(range(1, committed + 1))
    assert _db.session.scalar(select(InvoiceCounter.last).where(InvoiceCounter.year == 2026)) == (
        committed
    )
