"""The renewal engine's batch path (PostgreSQL) and its per-row fallback (SQLite).

On PostgreSQL (`scripts/with-postgres.sh`) a pass claims with FOR UPDATE SKIP LOCKED, records a
batch in one commit, asks the bank from a thread pool and settles set-based; on SQLite it takes
one claimed row at a time. The tests of test_renewal_engine.py run on both.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import give_billing
from tests.unit.renewal_fakes import make_card, make_service
from webapp.extensions import db as _db
from webapp.invoicing import fatturapa
from webapp.invoicing.models import Invoice
from webapp.invoicing.numbering import progressive
from webapp.invoicing.services import (
    customer_snapshot,
    document_of,
    invoice_of_order,
    lines_of,
    seller_from_config,
)
from webapp.invoicing.xsd import schema_errors
from webapp.outbox.models import OutboxEmail
from webapp.payments.events import order_paid
from webapp.payments.models import Payment, PaymentStatus
from webapp.renewals import batch, batch_claim
from webapp.renewals.charging import open_renewals
from webapp.renewals.engine import run_renewals
from webapp.renewals.models import Renewal, RenewalStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import settings
from webapp.shop.order_models import Order, OrderKind, OrderStatus

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
IN_WINDOW = EXPIRES - timedelta(days=14)
SKUS = ("PEC-STD", "SPID-PF", "CONS-1", "FPA-100")

postgres_only = pytest.mark.skipif(not PG_URL, reason="the batch path is PostgreSQL's")


@pytest.fixture
def services(dummy_customer, catalogue):
    card = make_card(dummy_customer)
    products = catalogue["products"]
    return [
        make_service(
            dummy_customer,
            products[SKUS[i % len(SKUS)]],
            expires_at=EXPIRES + i * timedelta(hours=1),
            card=card,
        )
        for i in range(8)
    ]


def count(model, *where) -> int:
    _db.session.expire_all()
    return _db.session.scalar(select(func.count()).select_from(model).where(*where))


def receipts() -> list[OutboxEmail]:
    _db.session.expire_all()
    return list(
        _db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.subject.contains("Rinnovo effettuato"))
        )
    )


def open_all(now: datetime) -> None:
    open_renewals(now, settings(), RenewalReport())


@postgres_only
def test_a_claim_skips_rows_another_worker_is_claiming(app, fake, services):
    open_all(IN_WINDOW)
    ids = sorted(_db.session.scalars(select(Renewal.id)))
    lease_now = datetime.now(UTC)
    # Another worker's claim statement holds the first row's lock right now.
    other = create_engine(PG_URL)
    with other.connect() as conn:
        conn.execute(text("SELECT id FROM renewal WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        mine = batch_claim.claim_batch(IN_WINDOW, "w1", lease_now, limit=100)  # does not wait
        conn.rollback()
    other.dispose()
    assert mine == ids[1:]
    # w1's rows are leased: w2 gets only the row that was locked, then nothing.
    assert batch_claim.claim_batch(IN_WINDOW, "w2", lease_now, limit=100) == ids[:1]
    assert batch_claim.claim_batch(IN_WINDOW, "w3", lease_now, limit=100) == []


@postgres_only
def test_two_workers_with_small_batches_charge_each_service_once(app, fake, services):
    app.config["RENEWAL_BATCH_SIZE"] = 2
    fake.latency = 0.02  # both workers are inside a pass together
    barrier = threading.Barrier(2)
    reports, failures = {}, []

    def worker(name: str) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                reports[name] = run_renewals(IN_WINDOW, worker=name)
            except Exception as exc:
                failures.append(exc)
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert sum(r.charged for r in reports.values()) == len(services)
    assert sum(r.errors for r in reports.values()) == 0
    keys = [c["key"] for c in fake.calls]
    assert len(keys) == len(set(keys)) == len(services)  # no row asked twice
    assert count(Payment, Payment.status == PaymentStatus.SUCCEEDED) == len(services)
    assert count(Renewal, Renewal.status == RenewalStatus.SUCCEEDED) == len(services)
    assert count(Renewal, Renewal.claimed_by.is_not(None)) == 0
    assert len(receipts()) == len(services)


@postgres_only
def test_a_crash_between_record_and_charge_is_charged_once_with_the_same_keys(
    app, fake, services, monkeypatch
):
    def killed(jobs, pool):
        raise SystemExit("killed after the record commit, before the bank was asked")

    monkeypatch.setattr(batch, "charge_all", killed)
    with pytest.raises(SystemExit):
        run_renewals(IN_WINDOW, worker="w1")
    _db.session.rollback()
    # Every attempt is on record, claimed, and the bank never heard of it.
    pending = list(_db.session.scalars(select(Payment).order_by(Payment.id)))
    assert [p.status for p in pending] == [PaymentStatus.PENDING] * len(services)
    assert fake.calls == []
    assert count(Renewal, Renewal.claimed_by == "w1") == len(services)
    assert run_renewals(IN_WINDOW, worker="w2").charged == 0  # the claims still hold

    monkeypatch.undo()
    later = lambda: datetime.now(UTC) + timedelta(minutes=10)  # noqa: E731 - claims ran out
    report = run_renewals(IN_WINDOW, worker="w2", lease_clock=later)
    assert report.charged == len(services)
    assert sorted(c["key"] for c in fake.calls) == sorted(p.idempotency_key for p in pending)
    assert len(fake.succeeded) == len(services)
    assert count(Payment) == len(services)  # no second attempt recorded
    assert len(receipts()) == len(services)


@postgres_only
def test_a_batch_with_mixed_outcomes(app, fake, dummy_customer, catalogue, services):
    expired = make_card(dummy_customer, exp_month=12, exp_year=2026, token="tok_old")
    stale = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=expired
    )
    report = run_renewals(IN_WINDOW)
    assert (report.charged, report.failed) == (len(services), 1)
    assert _db.session.scalar(
        select(Renewal.failure_code).where(Renewal.service_id == stale.id)
    ) == ("expired_card")
    fake.mode = "down"  # a second pass: nothing due, nothing asked
    assert run_renewals(IN_WINDOW).charged == 0
    assert len(fake.calls) == len(services)


@postgres_only
def test_no_answer_keeps_the_rows_for_the_next_pass_not_this_one(app, fake, services):
    fake.mode = "down"
    report = run_renewals(IN_WINDOW)
    assert report.unknown == len(services)  # each asked once in the pass, not again and again
    assert count(Renewal, Renewal.claimed_by.is_not(None)) == 0  # released when the pass ended
    fake.mode = "ok"
    assert run_renewals(IN_WINDOW + timedelta(minutes=5)).charged == len(services)
    assert len(fake.succeeded) == len(services)


@postgres_only
def test_batch_receipts_are_rendered_when_sent(app, fake, services):
    run_renewals(IN_WINDOW)
    mails = receipts()
    assert len(mails) == len(services)
    for mail in mails:
        assert mail.template == "renewal_succeeded"
        assert mail.sent_at is not None  # MAIL_SEND_AFTER_COMMIT: sent, so rendered
        assert "abbiamo rinnovato automaticamente" in mail.body_text
        assert "/area-clienti/ordini/" in mail.body_text
        # The invoice the batch issued in the same commit is linked, as in a per-row receipt.
        invoice = invoice_of_order(mail.context["order_id"])
        assert f"Fattura n. {invoice.number_label}" in mail.body_text
        assert f"/area-clienti/fatture/{invoice.id}" in mail.body_text


@postgres_only
def test_other_order_paid_subscribers_get_each_batch_order(app, fake, services):
    seen = []

    def invoicing(order, *, payment, card, now, batch_settled=False, **_):
        seen.append((order.id, order.status, payment.status, card.id, batch_settled))

    order_paid.connect(invoicing)
    try:
        run_renewals(IN_WINDOW)
    finally:
        order_paid.disconnect(invoicing)
    assert len(seen) == len(services)
    assert {s[1:3] for s in seen} == {(OrderStatus.PAID, PaymentStatus.SUCCEEDED)}
    assert all(s[4] for s in seen)
    paid = count(Order, Order.kind == OrderKind.RENEWAL, Order.status == OrderStatus.PAID)
    assert paid == len(services)


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's fallback")
def test_sqlite_takes_the_per_row_path(app, fake, services, monkeypatch):
    assert not batch.batch_supported()

    def never(*_args, **_kw):
        raise AssertionError("no batch path on SQLite")

    monkeypatch.setattr(batch, "claim_batch", never)
    assert run_renewals(IN_WINDOW).charged == len(services)
    assert len(fake.calls) == len(services)
    assert len(receipts()) == len(services)


@postgres_only
def test_a_batch_invoices_each_renewal_as_the_per_row_issue_would(
    app, fake, services, dummy_customer
):
    """The set-based invoices (invoicing.batch) carry what issue_invoice would write: the
    buyer's snapshot, the lines, numbers 1..n and the same XML bytes."""
    give_billing(dummy_customer, "private")
    run_renewals(IN_WINDOW)
    _db.session.expire_all()
    invoices = list(_db.session.scalars(select(Invoice).order_by(Invoice.number)))
    assert [i.number for i in invoices] == list(range(1, len(services) + 1))
    assert len({i.order_id for i in invoices}) == len(services)
    seller = seller_from_config()
    for invoice in invoices:
        order = _db.session.get(Order, invoice.order_id)
        assert order.kind is OrderKind.RENEWAL and order.status is OrderStatus.PAID
        assert invoice.customer == customer_snapshot(dummy_customer)
        assert invoice.lines == lines_of(order.kind, order.discount_code, order.lines)
        assert invoice.paid_cents == order.total_cents
        assert invoice.file_name == fatturapa.file_name(seller, progressive(invoice.id))
        document = document_of(invoice, order, progressive(invoice.id))
        assert invoice.xml == fatturapa.build(document, seller)
        assert schema_errors(invoice.xml) == []
