"""The renewal batch path's stages one at a time (PostgreSQL): what each writes and hands on.

test_renewal_batches.py runs whole passes; here each stage (claim, split, record, charge,
settle, release) and the batch invoices are called on their own, so that a wrong lease, price,
key, status or filter shows in the row it writes.
"""

from __future__ import annotations

import threading
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event, select, text

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import give_billing
from tests.unit.renewal_fakes import make_card, make_service
from webapp.clock import add_years
from webapp.extensions import db as _db
from webapp.invoicing import batch as invoicing_batch
from webapp.invoicing import fatturapa
from webapp.invoicing.models import DocumentKind, SdiState
from webapp.invoicing.numbering import progressive
from webapp.invoicing.services import (
    customer_snapshot,
    document_of,
    invoice_of_order,
    lines_of,
    seller_from_config,
)
from webapp.invoicing.xsd import schema_errors
from webapp.payments.events import PaidOrder, order_paid, orders_paid
from webapp.payments.gateway import GatewayRefused, GatewayStatus, GatewayUnavailable
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals import batch, batch_charge, batch_claim, batch_record, batch_settle
from webapp.renewals.charging import open_renewals
from webapp.renewals.events import RenewedService, services_renewed
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.outcomes import RenewalOutcome, RenewalReport
from webapp.renewals.services import settings
from webapp.shop.models import Customer, PaymentMethod, ProductPrice, ServiceKind
from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus

pytestmark = pytest.mark.skipif(not PG_URL, reason="the batch path is PostgreSQL's")

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
IN_WINDOW = EXPIRES - timedelta(days=14)
LEASE_NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def service(customer, catalogue, card, hours=0, sku="PEC-STD", **kw):
    product = catalogue["products"][sku]
    return make_service(
        customer, product, expires_at=EXPIRES + timedelta(hours=hours), card=card, **kw
    )


def renewal_of(svc) -> Renewal:
    _db.session.expire_all()
    return _db.session.scalar(select(Renewal).where(Renewal.service_id == svc.id))


def open_all(now: datetime = IN_WINDOW) -> None:
    open_renewals(now, settings(), RenewalReport())


def test_a_claim_leases_the_due_rows_to_the_worker_in_id_order(
    app, fake, dummy_customer, catalogue, card
):
    app.config["RENEWAL_CLAIM_SECONDS"] = 90
    services = [service(dummy_customer, catalogue, card, hours=h) for h in (2, 0, 1)]
    open_all()
    ids = sorted(renewal_of(s).id for s in services)
    assert batch_claim.claim_batch(IN_WINDOW, "w1", LEASE_NOW, limit=2) == ids[:2]
    rows = {r.id: r for r in _db.session.scalars(select(Renewal))}
    assert [rows[i].claimed_by for i in ids] == ["w1", "w1", None]
    assert rows[ids[0]].claimed_until == LEASE_NOW + timedelta(seconds=90)
    # The rest, for another worker; nothing left after.
    assert batch_claim.claim_batch(IN_WINDOW, "w2", LEASE_NOW, limit=2) == ids[2:]
    assert batch_claim.claim_batch(IN_WINDOW, "w3", LEASE_NOW, limit=2) == []


def test_a_claim_skips_a_row_another_worker_holds_instead_of_waiting(
    app, fake, dummy_customer, catalogue, card
):
    services = [service(dummy_customer, catalogue, card, hours=h) for h in range(2)]
    open_all()
    ids = sorted(renewal_of(s).id for s in services)
    other = create_engine(PG_URL)
    try:
        with other.connect() as conn:  # another worker's claim holds the first row right now
            conn.execute(text("SELECT id FROM renewal WHERE id = :id FOR UPDATE"), {"id": ids[0]})
            _db.session.execute(text("SET lock_timeout = '2s'"))  # waiting would fail the test
            assert batch_claim.claim_batch(IN_WINDOW, "w1", LEASE_NOW, limit=10) == ids[1:]
            conn.rollback()
    finally:
        other.dispose()
    assert batch_claim.claim_batch(IN_WINDOW, "w2", LEASE_NOW, limit=10) == ids[:1]


def claimed(services, worker="w1") -> list[int]:
    """The services' renewals, claimed by `worker` (as claim_batch leaves them)."""
    ids = sorted(renewal_of(s).id for s in services)
    for renewal in _db.session.scalars(select(Renewal).where(Renewal.id.in_(ids))):
        renewal.claimed_by = worker
        renewal.claimed_until = LEASE_NOW + timedelta(minutes=5)
    _db.session.commit()
    return ids


def test_split_sends_each_row_that_is_not_a_plain_first_attempt_per_row(
    app, fake, dummy_customer, catalogue, card
):
    plain = service(dummy_customer, catalogue, card, hours=0)
    this_month = make_card(dummy_customer, exp_month=1, exp_year=2027, token="tok_jan")
    last_month = make_card(dummy_customer, exp_month=12, exp_year=2026, token="tok_dec")
    removed = make_card(dummy_customer, token="tok_removed")
    until_january = service(dummy_customer, catalogue, this_month, hours=1)
    odd = {
        "retry": service(dummy_customer, catalogue, card, hours=2),
        "expired": service(dummy_customer, catalogue, card, hours=3),
        "stopped": service(dummy_customer, catalogue, card, hours=4),
        "not renewable": service(dummy_customer, catalogue, card, hours=5, sku="PEC-PRO"),
        "moved on": service(dummy_customer, catalogue, card, hours=6),
        "no card": service(dummy_customer, catalogue, card, hours=7),
        "removed card": service(dummy_customer, catalogue, removed, hours=8),
        "card expired": service(dummy_customer, catalogue, last_month, hours=9),
    }
    open_all()
    theirs = service(dummy_customer, catalogue, card, hours=10)
    open_all()
    renewal_of(odd["retry"]).order_id = _db.session.get(
        OrderLine, odd["retry"].order_line_id
    ).order_id
    odd["expired"].status = ServiceStatus.EXPIRED
    odd["stopped"].auto_renew = False
    catalogue["products"]["PEC-PRO"].kind = ServiceKind.FIRMA_DIGITALE
    odd["moved on"].expires_at += timedelta(days=1)
    odd["no card"].saved_card_id = None
    removed.removed_at = IN_WINDOW
    _db.session.commit()
    ids = claimed([plain, until_january, *odd.values()])
    claimed([theirs], worker="w2")
    everyone = sorted([*ids, renewal_of(theirs).id])

    jobs, others = batch_claim.split(everyone, IN_WINDOW, "w1", settings())
    assert [j.service_id for j in jobs] == [plain.id, until_january.id]
    assert others == [renewal_of(s).id for s in odd.values()]


def test_split_charges_by_batch_through_the_expiry_day_in_italy(
    app, fake, dummy_customer, catalogue, card
):
    svc = service(dummy_customer, catalogue, card)
    open_all()
    ids = claimed([svc])
    last_minute = datetime(2027, 1, 20, 22, 59, tzinfo=UTC)  # 23:59 in Rome, the expiry day
    jobs, others = batch_claim.split(ids, last_minute, "w1", settings())
    assert ([j.renewal_id for j in jobs], others) == (ids, [])
    jobs, others = batch_claim.split(ids, last_minute + timedelta(minutes=1), "w1", settings())
    assert (jobs, others) == ([], ids)  # the day after, in Rome: the per-row path decides


def test_a_job_carries_the_price_in_force_and_who_pays_it(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    office = create_customer(email="ufficio@comune.it", name="Comune Esempio")
    give_billing(office, "public")
    office_card = make_card(office, token="tok_office")
    spid = catalogue["products"]["SPID-PF"]
    _db.session.add_all(
        [
            ProductPrice(
                product_id=spid.id, yearly_price_cents=1300, effective_from=date(2027, 1, 6)
            ),
            ProductPrice(
                product_id=spid.id, yearly_price_cents=9900, effective_from=date(2027, 1, 7)
            ),
        ]
    )
    _db.session.commit()
    mine = service(dummy_customer, catalogue, card, sku="SPID-PF", years=2)
    theirs = service(office, catalogue, office_card, hours=1, sku="SPID-PF")
    open_all()
    ids = claimed([mine, theirs])
    # A row updated last lies last in the table: the jobs still come in id order.
    _db.session.execute(
        text("UPDATE renewal SET attempts = attempts WHERE id = :id"), {"id": ids[0]}
    )
    _db.session.commit()

    jobs, others = batch_claim.split(ids, IN_WINDOW, "w1", settings())  # 6 January 2027
    assert others == []
    job, office_job = jobs
    assert job == batch_claim.Job(
        renewal_id=ids[0],
        attempt=1,
        service_id=mine.id,
        customer_id=dummy_customer.id,
        customer_email=dummy_customer.email,
        product_id=spid.id,
        product_name=spid.name,
        product_kind=spid.kind,
        yearly_price_cents=1300,
        years=2,
        net_cents=2600,
        vat_cents=572,
        period=EXPIRES,
        card_id=card.id,
        token=card.gateway_token,
        announce=True,  # never announced: the notice goes with the record
    )
    assert (job.total_cents, job.key, job.order_ref) == (3172, f"renewal-{ids[0]}-1", "ORD-0")
    assert (office_job.customer_id, office_job.split_payment) == (office.id, True)
    assert (office_job.net_cents, office_job.vat_cents, office_job.total_cents) == (1300, 286, 1300)
    assert office_job.token == "tok_office"


def plain_jobs(create_customer, dummy_customer, catalogue, card):
    """Two plain claimed jobs: the customer's PEC for two years, a public office's SPID."""
    office = create_customer(email="ufficio@comune.it", name="Comune Esempio")
    give_billing(office, "public")
    office_card = make_card(office, token="tok_office")
    mine = service(dummy_customer, catalogue, card, years=2)
    theirs = service(office, catalogue, office_card, hours=1, sku="SPID-PF")
    open_all()
    jobs, others = batch_claim.split(claimed([mine, theirs]), IN_WINDOW, "w1", settings())
    assert others == []
    return jobs


def test_record_puts_every_attempt_on_record_before_the_bank(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs = plain_jobs(create_customer, dummy_customer, catalogue, card)
    recorded = batch_record.record(jobs, IN_WINDOW, "w1")
    _db.session.rollback()  # committed: nothing is lost with the session's state
    for job in recorded:
        order = _db.session.get(Order, job.order_id)
        payment = _db.session.get(Payment, job.payment_id)
        renewal = _db.session.get(Renewal, job.renewal_id)
        assert job.order_number == order.number
        assert (order.customer_id, order.kind, order.status, order.payment_method) == (
            job.customer_id,
            OrderKind.RENEWAL,
            OrderStatus.PENDING_PAYMENT,
            PaymentMethod.CARD,
        )
        assert (order.subtotal_cents, order.discount_cents, order.net_cents) == (
            job.net_cents,
            0,
            job.net_cents,
        )
        assert (order.vat_cents, order.total_cents, order.split_payment) == (
            job.vat_cents,
            job.total_cents,
            job.split_payment,
        )
        assert (order.currency, order.created_at, order.discount_code) == ("EUR", IN_WINDOW, None)
        (line,) = order.lines
        assert (line.product_id, line.product_name, line.kind, line.years) == (
            job.product_id,
            job.product_name,
            job.product_kind,
            job.years,
        )
        assert (line.yearly_price_cents, line.list_cents, line.discount_cents, line.net_cents) == (
            job.yearly_price_cents,
            job.net_cents,
            0,
            job.net_cents,
        )
        assert (line.auto_renew, line.service_id) == (True, job.service_id)
        assert (payment.order_id, payment.channel, payment.status) == (
            order.id,
            PaymentChannel.RENEWAL,
            PaymentStatus.PENDING,
        )
        assert (payment.amount_cents, payment.currency, payment.refunded_cents) == (
            job.total_cents,
            "EUR",
            0,
        )
        assert (payment.idempotency_key, payment.saved_card_id, payment.created_at) == (
            f"renewal-{job.renewal_id}-1",
            job.card_id,
            IN_WINDOW,
        )
        assert (renewal.attempts, renewal.last_attempt_at, renewal.status) == (
            1,
            IN_WINDOW,
            RenewalStatus.PENDING,
        )
        assert (renewal.order_id, renewal.claimed_by) == (order.id, "w1")
    assert [j.split_payment for j in recorded] == [False, True]
    assert recorded[1].total_cents == recorded[1].net_cents


@pytest.mark.parametrize("lost", ["claim", "attempt"])
def test_record_of_a_batch_no_longer_all_ours_writes_nothing(
    app, fake, create_customer, dummy_customer, catalogue, card, lost
):
    jobs = plain_jobs(create_customer, dummy_customer, catalogue, card)
    renewal = _db.session.get(Renewal, jobs[1].renewal_id)
    if lost == "claim":  # the lease ran out and another worker holds the row
        renewal.claimed_by = "w2"
    else:  # another pass counted an attempt meanwhile
        renewal.attempts = 1
    _db.session.commit()
    with pytest.raises(batch_record.LostClaim, match="^1 renewals of the batch"):
        batch_record.record(jobs, IN_WINDOW, "w1")
    assert _db.session.scalars(select(Order).where(Order.kind == OrderKind.RENEWAL)).all() == []
    assert _db.session.scalars(select(Payment)).all() == []
    first = _db.session.get(Renewal, jobs[0].renewal_id)
    assert (first.attempts, first.order_id, first.last_attempt_at) == (0, None, None)


def test_charge_asks_the_bank_once_per_recorded_payment_with_its_key(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs = batch_record.record(
        plain_jobs(create_customer, dummy_customer, catalogue, card), IN_WINDOW, "w1"
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = batch_charge.charge_all(jobs, pool)
    calls = sorted(fake.calls, key=lambda c: c["key"])
    assert calls == [
        dict(
            token=j.token,
            amount_cents=j.total_cents,
            currency="EUR",
            order_ref=f"ORD-{j.order_id}",
            description=f"Ordine {j.order_number}",
            initiator="merchant",
            key=f"renewal-{j.renewal_id}-1",
        )
        for j in sorted(jobs, key=lambda j: j.key)
    ]
    assert [(a.succeeded, a.amount_cents, a.order_ref) for a in answers] == [
        (True, j.total_cents, j.order_ref) for j in jobs
    ]
    fake.mode = "down"  # an error is an answer too, in the job's place
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = batch_charge.charge_all(jobs, pool)
    assert [type(a) for a in answers] == [GatewayUnavailable, GatewayUnavailable]


SETTLE_NOW = IN_WINDOW + timedelta(minutes=3)


def charged(create_customer, dummy_customer, catalogue, card):
    """The two plain jobs, recorded and asked of the (fake) bank: the jobs and the answers."""
    jobs = batch_record.record(
        plain_jobs(create_customer, dummy_customer, catalogue, card), IN_WINDOW, "w1"
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        return jobs, batch_charge.charge_all(jobs, pool)


@contextmanager
def listening(*signals):
    """What each signal sends meanwhile: a list of keyword arguments per signal."""
    heard = [[] for _ in signals]
    receivers = [lambda sender, _heard=h, **kw: _heard.append(kw) for h in heard]
    for signal, receiver in zip(signals, receivers, strict=True):
        signal.connect(receiver)
    try:
        yield heard
    finally:
        for signal, receiver in zip(signals, receivers, strict=True):
            signal.disconnect(receiver)


def test_settle_pays_extends_and_closes_each_success_in_one_commit(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    checkout = Order(  # another order waiting for its payment: not the batch's
        customer_id=dummy_customer.id,
        kind=OrderKind.PURCHASE,
        status=OrderStatus.PENDING_PAYMENT,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=500,
        discount_cents=0,
        net_cents=500,
        vat_cents=110,
        total_cents=610,
        created_at=IN_WINDOW,
    )
    _db.session.add(checkout)
    # Meanwhile the expiry sweep marked the first service expired; a failure is on record.
    _db.session.get(Service, jobs[0].service_id).status = ServiceStatus.EXPIRED
    _db.session.get(Renewal, jobs[0].renewal_id).failure_code = "card_declined"
    _db.session.get(Renewal, jobs[0].renewal_id).failure_reason = "Carta rifiutata."
    _db.session.commit()
    with listening(services_renewed, orders_paid) as (renewed, paid):
        outcomes = batch_settle.settle(jobs, answers, SETTLE_NOW, settings())
    assert outcomes == [RenewalOutcome.CHARGED, RenewalOutcome.CHARGED]
    _db.session.rollback()  # committed
    for job, answer in zip(jobs, answers, strict=True):
        order = _db.session.get(Order, job.order_id)
        payment = _db.session.get(Payment, job.payment_id)
        svc = _db.session.get(Service, job.service_id)
        renewal = _db.session.get(Renewal, job.renewal_id)
        assert (order.status, order.paid_at) == (OrderStatus.PAID, SETTLE_NOW)
        assert (payment.status, payment.completed_at, payment.gateway_ref) == (
            PaymentStatus.SUCCEEDED,
            SETTLE_NOW,
            answer.charge_id,
        )
        assert (svc.expires_at, svc.status) == (
            add_years(job.period, job.years),
            ServiceStatus.ACTIVE,
        )
        assert (renewal.status, renewal.completed_at, renewal.next_attempt_at) == (
            RenewalStatus.SUCCEEDED,
            SETTLE_NOW,
            None,
        )
        assert (renewal.failure_code, renewal.failure_reason) == (None, None)
        assert (renewal.claimed_by, renewal.claimed_until) == (None, None)
        assert invoice_of_order(order.id).payment_id == payment.id
    assert [r["renewed"] for r in renewed] == [
        [
            RenewedService(
                service_id=j.service_id,
                renewal_id=j.renewal_id,
                order_id=j.order_id,
                payment_id=j.payment_id,
                customer_email=j.customer_email,
                product_name=j.product_name,
                old_expiry=j.period,
                new_expiry=add_years(j.period, j.years),
            )
            for j in jobs
        ]
    ]
    assert [r["now"] for r in renewed] == [SETTLE_NOW]
    assert (checkout.status, checkout.paid_at) == (OrderStatus.PENDING_PAYMENT, None)
    assert paid == [dict(paid=[PaidOrder(j.order_id, j.payment_id) for j in jobs], now=SETTLE_NOW)]


def test_settle_leaves_each_answer_that_is_not_a_plain_success_to_the_per_row_path(
    app, fake, create_customer, dummy_customer, catalogue, card, caplog
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    more = [service(dummy_customer, catalogue, card, hours=h) for h in (2, 3, 4)]
    open_all()
    extra = batch_claim.split(claimed(more), IN_WINDOW, "w1", settings())[0]
    jobs += batch_record.record(extra, IN_WINDOW, "w1")
    answers = [
        replace(answers[0], status=GatewayStatus.DECLINED, decline_code="insufficient_funds"),
        replace(answers[1], amount_cents=answers[1].amount_cents - 1),  # not what was asked
        GatewayUnavailable("read timeout"),
        GatewayRefused("invalid_token", 422),
        RuntimeError("the shop's process died"),
    ]
    outcomes = batch_settle.settle(jobs, answers, SETTLE_NOW, settings())
    assert outcomes == [
        RenewalOutcome.FAILED,
        RenewalOutcome.FAILED,
        RenewalOutcome.UNKNOWN,
        RenewalOutcome.FAILED,
        RenewalOutcome.ERRORS,
    ]
    _db.session.rollback()
    payments = [_db.session.get(Payment, j.payment_id) for j in jobs]
    assert [p.status for p in payments] == [
        PaymentStatus.DECLINED,
        PaymentStatus.TO_VERIFY,  # held, and the money taken given back at once
        PaymentStatus.UNKNOWN,
        PaymentStatus.FAILED,
        PaymentStatus.PENDING,  # a crash: the claim runs out, the next pass asks the bank
    ]
    assert [r.amount_cents for r in fake.refunds.values()] == [answers[1].amount_cents]
    assert [p.failure_code for p in payments[::3]] == ["insufficient_funds", "invalid_token"]
    assert [p.completed_at for p in payments[::3]] == [SETTLE_NOW, SETTLE_NOW]
    orders = [_db.session.get(Order, j.order_id) for j in jobs]
    assert OrderStatus.PAID not in {o.status for o in orders}
    services = [_db.session.get(Service, j.service_id) for j in jobs]
    assert [s.expires_at for s in services] == [j.period for j in jobs]  # none extended
    assert [r.levelname for r in caplog.records if "failed with an error" in r.message] == ["ERROR"]


def test_split_charges_by_batch_what_was_announced_as_it_is_and_nothing_else(
    app, fake, dummy_customer, catalogue, card
):
    """PEC-STD at 5.00 a year, 22% VAT: 6.10 for one year, 12.20 for two."""
    other_card = make_card(dummy_customer, token="tok_other")
    as_announced = service(dummy_customer, catalogue, card)
    two_years = service(dummy_customer, catalogue, card, hours=1, years=2)
    announced = {
        as_announced: (610, 1, card.id),
        two_years: (1220, 2, card.id),
        service(dummy_customer, catalogue, card, hours=2): (600, 1, card.id),
        service(dummy_customer, catalogue, card, hours=3, years=2): (1220, 1, card.id),
        service(dummy_customer, catalogue, card, hours=4): (610, 1, other_card.id),
    }
    open_all()
    for svc, (cents, years, card_id) in announced.items():
        svc.announced_period = svc.expires_at
        svc.announced_cents, svc.announced_years, svc.announced_card_id = cents, years, card_id
    _db.session.commit()
    ids = claimed(list(announced))
    jobs, others = batch_claim.split(ids, IN_WINDOW, "w1", settings())
    assert [(j.service_id, j.total_cents, j.announce) for j in jobs] == [
        (as_announced.id, 610, False),
        (two_years.id, 1220, False),
    ]
    assert others == ids[2:]  # announced otherwise: the per-row path sends the new notice


def test_settle_leaves_an_order_paid_meanwhile_to_the_per_row_path(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    paid_by_hand = _db.session.get(Order, jobs[0].order_id)
    paid_by_hand.status, paid_by_hand.paid_at = OrderStatus.PAID, IN_WINDOW
    # The other charge's answer was lost once, and found since: the payment says UNKNOWN.
    _db.session.get(Payment, jobs[1].payment_id).status = PaymentStatus.UNKNOWN
    _db.session.commit()
    outcomes = batch_settle.settle(jobs, answers, SETTLE_NOW, settings())
    _db.session.rollback()
    first, second = (_db.session.get(Payment, j.payment_id) for j in jobs)
    # The capture of an order paid already: recorded per row, the service extended once.
    assert outcomes[1] is RenewalOutcome.CHARGED
    assert (second.status, second.completed_at) == (PaymentStatus.SUCCEEDED, SETTLE_NOW)
    assert _db.session.get(Order, jobs[0].order_id).paid_at == IN_WINDOW
    # The first: a second capture of a paid order, recorded as such and given back.
    assert outcomes[0] is RenewalOutcome.FAILED
    assert (first.status, first.refunded_cents) == (PaymentStatus.DUPLICATE, jobs[0].total_cents)


def test_settle_of_a_lone_order_paid_meanwhile_settles_it_per_row(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    for job in jobs:
        _db.session.get(Order, job.order_id).status = OrderStatus.PAID
    _db.session.commit()
    with listening(services_renewed, orders_paid) as (renewed, paid):
        batch_settle.settle(jobs, answers, SETTLE_NOW, settings())
    assert (renewed, paid) == ([], [])
    assert [_db.session.get(Payment, j.payment_id).status for j in jobs] != [
        PaymentStatus.PENDING
    ] * 2


@pytest.mark.parametrize("moved", ["payment", "renewal"])
def test_settle_refuses_a_batch_whose_rows_changed_under_it(
    app, fake, create_customer, dummy_customer, catalogue, card, moved
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    if moved == "payment":
        _db.session.get(Payment, jobs[1].payment_id).status = PaymentStatus.FAILED
    else:
        _db.session.get(Renewal, jobs[1].renewal_id).status = RenewalStatus.ABANDONED
    _db.session.commit()
    changed = {"payment": "a renewal payment changed", "renewal": "a renewal changed"}[moved]
    with pytest.raises(RuntimeError, match=f"^{changed} under the batch settlement$"):
        batch_settle.settle(jobs, answers, SETTLE_NOW, settings())


def test_settle_extends_a_service_only_from_the_expiry_it_renewed(
    app, fake, create_customer, dummy_customer, catalogue, card, caplog
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    renewed_by_hand = add_years(jobs[1].period, 1)
    _db.session.get(Service, jobs[1].service_id).expires_at = renewed_by_hand
    _db.session.commit()
    assert (
        batch_settle.settle(jobs, answers, SETTLE_NOW, settings()) == [RenewalOutcome.CHARGED] * 2
    )
    _db.session.rollback()
    assert [_db.session.get(Service, j.service_id).expires_at for j in jobs] == [
        add_years(jobs[0].period, 2),
        renewed_by_hand,  # not extended twice
    ]
    moved_on = [r.message for r in caplog.records if "had moved on" in r.message]
    assert moved_on == [
        f"renewal {jobs[1].renewal_id} paid, service {jobs[1].service_id} had moved on from "
        f"{jobs[1].period}"
    ]


def test_settle_hands_each_order_to_a_receiver_that_takes_no_batch(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    seen = []

    def receiver(order, *, payment, card, now, batch_settled=False, **_):
        seen.append((order.id, order.lines[0].service_id, payment.id, card.id, now, batch_settled))

    order_paid.connect(receiver)
    try:
        batch_settle.settle(jobs, answers, SETTLE_NOW, settings())
    finally:
        order_paid.disconnect(receiver)
    assert seen == [
        (j.order_id, j.service_id, j.payment_id, j.card_id, SETTLE_NOW, True) for j in jobs
    ]


def test_the_batch_path_is_postgresql_s_unless_turned_off(app):
    assert (batch.batch_size(), batch.batch_supported()) == (500, True)
    app.config["RENEWAL_BATCH_SIZE"] = 1
    assert (batch.batch_size(), batch.batch_supported()) == (1, True)
    app.config["RENEWAL_BATCH_SIZE"] = 0
    assert (batch.batch_size(), batch.batch_supported()) == (0, False)


def test_release_settled_frees_this_worker_s_rows_no_longer_due(
    app, fake, dummy_customer, catalogue, card
):
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(6)]
    open_all()
    ids = claimed(svcs[:4])
    claimed(svcs[4:], worker="w2")
    another_batch = claimed(svcs[5:])  # this worker's, not asked about
    rows = [renewal_of(s) for s in svcs]
    rows[5].status = RenewalStatus.SUCCEEDED
    rows[0].status = RenewalStatus.SUCCEEDED  # paid
    rows[1].next_attempt_at = IN_WINDOW  # still due (a retry due now)
    rows[2].next_attempt_at = None  # open, nothing scheduled: not due
    rows[3].next_attempt_at = IN_WINDOW + timedelta(seconds=1)  # due later
    rows[4].status = RenewalStatus.SUCCEEDED  # w2's
    _db.session.commit()
    everyone = [*ids, rows[4].id]
    assert batch.release_settled(everyone, "w1", IN_WINDOW) == {ids[0], ids[2], ids[3]}
    _db.session.expire_all()
    assert [r.claimed_by for r in rows] == [None, "w1", None, None, "w2", "w1"]
    assert [r.claimed_until is None for r in rows] == [True, False, True, True, False, False]
    assert batch.release_settled(another_batch, "w1", IN_WINDOW) == set(another_batch)


def test_release_held_frees_this_worker_s_rows_chunk_by_chunk(
    app, fake, dummy_customer, catalogue, card, monkeypatch
):
    monkeypatch.setattr(batch, "RELEASE_CHUNK", 2)
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(6)]
    open_all()
    ids = claimed(svcs[:5])
    theirs = claimed(svcs[5:], worker="w2")
    svc = service(dummy_customer, catalogue, card, hours=7)
    open_all()
    mine_not_held = claimed([svc])
    batch.release_held(array("q", [*ids, *theirs]), "w1")
    _db.session.rollback()  # committed
    rows = [renewal_of(s) for s in svcs]
    assert [(r.claimed_by, r.claimed_until is None) for r in rows] == [(None, True)] * 5 + [
        ("w2", False)
    ]
    assert _db.session.get(Renewal, mine_not_held[0]).claimed_by == "w1"
    assert [list(c) for c in batch._chunks(array("q", range(5)), 2)] == [[0, 1], [2, 3], [4]]


def test_charge_batch_records_and_asks_the_bank_for_the_plain_rows_only(
    app, fake, dummy_customer, catalogue, card
):
    plain = [service(dummy_customer, catalogue, card, hours=h) for h in range(2)]
    stopped = service(dummy_customer, catalogue, card, hours=2)
    open_all()
    stopped.auto_renew = False
    _db.session.commit()
    ids = claimed([*plain, stopped])
    with ThreadPoolExecutor(max_workers=2) as pool:
        charged_batch = batch.charge_batch(ids, IN_WINDOW, "w1", settings(), pool)
    assert (charged_batch.ids, charged_batch.others, charged_batch.outcomes) == (
        ids,
        ids[2:],
        [],
    )
    assert [j.renewal_id for j in charged_batch.jobs] == ids[:2]
    assert all(j.order_id and j.payment_id for j in charged_batch.jobs)  # recorded
    assert [a.order_ref for a in charged_batch.answers] == [j.order_ref for j in charged_batch.jobs]
    assert sorted(c["key"] for c in fake.calls) == [f"renewal-{i}-1" for i in ids[:2]]
    # The notices of the renewals never announced, queued with the record.
    _db.session.expire_all()
    assert [s.announced_period for s in plain] == [s.expires_at for s in plain]
    assert stopped.announced_period is None


def test_charge_batch_of_claims_lost_meanwhile_skips_them_and_asks_nothing(
    app, fake, dummy_customer, catalogue, card, caplog, monkeypatch
):
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(2)]
    open_all()
    ids = claimed(svcs)
    real_split = batch.split

    def split_then_lose(*args):  # the lease runs out between the read and the record
        jobs, others = real_split(*args)
        _db.session.get(Renewal, ids[1]).claimed_by = "w2"
        _db.session.commit()
        return jobs, others

    monkeypatch.setattr(batch, "split", split_then_lose)
    with ThreadPoolExecutor(max_workers=2) as pool:
        charged_batch = batch.charge_batch(ids, IN_WINDOW, "w1", settings(), pool)
    assert (charged_batch.jobs, charged_batch.answers) == ([], [])
    assert charged_batch.outcomes == [RenewalOutcome.SKIPPED] * 2
    assert fake.calls == []
    assert [r.levelname for r in caplog.records if "batch not recorded" in r.message] == ["WARNING"]


def charge_a_batch(services):
    ids = claimed(services)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return batch.charge_batch(ids, IN_WINDOW, "w1", settings(), pool)


def test_settle_batch_keeps_claimed_only_the_rows_still_due(
    app, fake, dummy_customer, catalogue, card
):
    expired_card = make_card(dummy_customer, exp_month=12, exp_year=2026, token="tok_old")
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(2)]
    svcs.append(service(dummy_customer, catalogue, expired_card, hours=2))
    open_all()
    fake.mode = "down"  # the bank does not answer: the two charges are still to be asked
    charged_batch = charge_a_batch(svcs)
    assert len(charged_batch.jobs) == 2
    outcomes, kept = batch.settle_batch(charged_batch, SETTLE_NOW, "w1", settings())
    assert outcomes == [RenewalOutcome.UNKNOWN, RenewalOutcome.UNKNOWN, RenewalOutcome.FAILED]
    assert kept == charged_batch.ids[:2]
    rows = [renewal_of(s) for s in svcs]
    assert [r.claimed_by for r in rows] == ["w1", "w1", None]  # the failed one released


def test_a_batch_whose_settlement_fails_is_settled_row_by_row(
    app, fake, dummy_customer, catalogue, card, caplog, monkeypatch
):
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(4)]
    open_all()
    svcs[3].auto_renew = False  # the per-row path
    _db.session.commit()
    charged_batch = charge_a_batch(svcs)
    charged_batch.answers[2] = RuntimeError("the shop's process died")

    def broken(*args):
        _db.session.execute(text("SELECT 1"))
        raise RuntimeError("deadlock detected")

    per_row = batch.process_claimed
    errored = charged_batch.others[0]

    def process_claimed(renewal_id, *args, **kw):
        if renewal_id == errored:  # crashed before writing anything: still due
            return RenewalOutcome.ERRORS
        return per_row(renewal_id, *args, **kw)

    monkeypatch.setattr(batch, "settle", broken)
    monkeypatch.setattr(batch, "process_claimed", process_claimed)
    outcomes, kept = batch.settle_batch(charged_batch, SETTLE_NOW, "w1", settings())
    assert outcomes == [
        RenewalOutcome.CHARGED,  # asked again with the same key: charged once
        RenewalOutcome.CHARGED,
        RenewalOutcome.ERRORS,  # a crash: its claim runs out
        RenewalOutcome.ERRORS,
    ]
    assert kept == []  # an errored row is not held for the pass: its claim runs out
    assert sorted(fake.charges) == sorted(j.key for j in charged_batch.jobs)
    rows = [renewal_of(s) for s in svcs]
    assert [r.status for r in rows[:2]] == [RenewalStatus.SUCCEEDED] * 2
    assert [r.claimed_by for r in rows] == [None, None, "w1", "w1"]
    assert [r.levelname for r in caplog.records if "settling its 3" in r.message] == ["ERROR"]


def test_run_batches_takes_every_due_row_batch_by_batch_and_releases_them(
    app, fake, dummy_customer, catalogue, card, monkeypatch
):
    app.config["RENEWAL_BATCH_SIZE"] = 2
    app.config["RENEWAL_BANK_THREADS"] = 2
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(5)]
    expired = make_card(dummy_customer, exp_month=12, exp_year=2026, token="tok_old")
    failing = service(dummy_customer, catalogue, expired, hours=6)
    open_all()
    claims, claim = [], batch.claim_batch

    def claim_batch(now, worker, lease_now, limit):
        claims.append((now, worker, lease_now, claim(now, worker, lease_now, limit)))
        return claims[-1][-1]

    monkeypatch.setattr(batch, "claim_batch", claim_batch)
    report = RenewalReport()
    batch.run_batches(IN_WINDOW, "w1", settings(), lambda: LEASE_NOW, report)
    assert [len(c[-1]) for c in claims] == [2, 2, 2, 0]
    assert {c[:3] for c in claims} == {(IN_WINDOW, "w1", LEASE_NOW)}
    assert (report.charged, report.failed, report.errors) == (5, 1, 0)
    assert renewal_of(failing).claimed_by is None
    assert len(fake.calls) == 5
    rows = [renewal_of(s) for s in svcs]
    assert {(r.status, r.claimed_by) for r in rows} == {(RenewalStatus.SUCCEEDED, None)}


def test_run_batches_asks_each_row_once_a_pass_and_releases_what_is_still_due(
    app, fake, dummy_customer, catalogue, card
):
    app.config["RENEWAL_BATCH_SIZE"] = 2
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(3)]
    open_all()
    fake.mode = "down"
    report = RenewalReport()
    batch.run_batches(IN_WINDOW, "w1", settings(), lambda: LEASE_NOW, report)
    assert report.unknown == 3
    rows = [renewal_of(s) for s in svcs]
    assert [r.attempts for r in rows] == [1, 1, 1]  # each asked once in the pass
    assert len(_db.session.scalars(select(Payment)).all()) == 3
    assert [(r.status, r.claimed_by, r.claimed_until) for r in rows] == [
        (RenewalStatus.PENDING, None, None)
    ] * 3


def recorded_orders(create_customer, dummy_customer, catalogue, card) -> list[PaidOrder]:
    """Three renewal orders on record (PEC for two years, a public office's SPID, a PEC of a
    buyer who gave no billing data), as orders_paid hands them to invoicing."""
    jobs = plain_jobs(create_customer, dummy_customer, catalogue, card)
    anonymous = create_customer(email="anna@example.it", name="Anna Bianchi", billing=False)
    lone = service(anonymous, catalogue, make_card(anonymous, token="tok_anna"), hours=5)
    open_all()
    jobs += batch_claim.split(claimed([lone]), IN_WINDOW, "w1", settings())[0]
    return [PaidOrder(j.order_id, j.payment_id) for j in batch_record.record(jobs, IN_WINDOW, "w1")]


def test_batch_invoices_are_what_the_per_row_issue_writes(
    app, fake, create_customer, dummy_customer, catalogue, card, caplog
):
    paid = recorded_orders(create_customer, dummy_customer, catalogue, card)
    # An order updated last lies last in the table: the numbers still follow the orders' ids.
    _db.session.execute(
        text("UPDATE orders SET net_cents = net_cents WHERE id = :id"), {"id": paid[0].order_id}
    )
    _db.session.commit()
    issued_at = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 1 January 2027 in Italy
    assert invoicing_batch.issue_invoices(paid, issued_at) == 3
    _db.session.commit()
    invoices = [invoice_of_order(p.order_id) for p in paid]
    assert [(i.year, i.number, i.number_label) for i in invoices] == [
        (2027, 1, "2027/000001"),
        (2027, 2, "2027/000002"),
        (2027, 3, "2027/000003"),
    ]
    seller = seller_from_config()
    for invoice, p in zip(invoices, paid, strict=True):
        order = _db.session.get(Order, p.order_id)
        customer = _db.session.get(Customer, order.customer_id)
        assert (invoice.kind, invoice.order_id, invoice.payment_id) == (
            DocumentKind.INVOICE,
            order.id,
            p.payment_id,
        )
        assert (invoice.customer_id, invoice.customer) == (customer.id, customer_snapshot(customer))
        assert invoice.lines == lines_of(order.kind, order.discount_code, order.lines)
        assert (invoice.net_cents, invoice.vat_cents, invoice.vat_rate_percent) == (
            order.net_cents,
            order.vat_cents,
            22,
        )
        assert (invoice.total_cents, invoice.paid_cents, invoice.split_payment) == (
            order.net_cents + order.vat_cents,
            order.total_cents,
            order.split_payment,
        )
        assert (invoice.payment_method, invoice.currency, invoice.issued_at) == (
            "MP08",
            "EUR",
            issued_at,
        )
        assert invoice.file_name == fatturapa.file_name(seller, progressive(invoice.id))
        assert invoice.xml == fatturapa.build(
            document_of(invoice, order, progressive(invoice.id)), seller
        )
        # Valid, but for the buyer without an address (kept back until the data is given).
        assert (schema_errors(invoice.xml) == []) is (invoice.sdi_state is SdiState.TO_SEND)
    checked = [r.message for r in caplog.records if r.name == "webapp.invoicing.batch"]
    assert [m.split(":")[0] for m in checked] == [
        f"invoice {invoices[2].id} does not match the FatturaPA schema"
    ]
    assert [i.split_payment for i in invoices] == [False, True, False]
    assert [i.sdi_state for i in invoices] == [
        SdiState.TO_SEND,
        SdiState.TO_SEND,
        SdiState.MISSING_DATA,  # no billing data: asked of the customer, never sent invalid
    ]


def test_batch_invoices_skip_the_orders_invoiced_already(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    paid = recorded_orders(create_customer, dummy_customer, catalogue, card)
    assert invoicing_batch.issue_invoices(paid[1:2], IN_WINDOW) == 1
    assert invoicing_batch.issue_invoices(paid, IN_WINDOW) == 2  # a replay issues the rest
    assert invoicing_batch.issue_invoices(paid, IN_WINDOW) == 0
    assert invoicing_batch.issue_invoices([], IN_WINDOW) == 0
    _db.session.commit()
    assert [invoice_of_order(p.order_id).number for p in paid] == [2, 1, 3]


def test_batch_invoices_take_the_buyer_copied_on_the_order(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    paid = recorded_orders(create_customer, dummy_customer, catalogue, card)
    order = _db.session.get(Order, paid[0].order_id)
    buyer = dict(customer_snapshot(dummy_customer), city="Torino")
    order.buyer = buyer
    _db.session.commit()
    invoicing_batch.issue_invoices(paid, IN_WINDOW)
    assert invoice_of_order(order.id).customer == buyer


def test_a_batch_invoice_s_xml_has_exactly_one_number_to_assign():
    stand_in = invoicing_batch.PENDING_NUMBER.encode()
    assert invoicing_batch._numbered(b"<a>" + stand_in + b"</a>", "2027/000004") == (
        b"<a><Numero>2027/000004</Numero></a>"
    )
    for xml in (b"<a></a>", stand_in * 2):
        with pytest.raises(RuntimeError, match="^an invoice's XML lacks its one number to assign$"):
            invoicing_batch._numbered(xml, "2027/000004")


def test_a_batch_invoice_is_issued_whatever_the_schema_check_says(
    app, fake, create_customer, dummy_customer, catalogue, card, monkeypatch, caplog
):
    paid = recorded_orders(create_customer, dummy_customer, catalogue, card)

    def broken(xml):
        raise OSError("no schema")

    monkeypatch.setattr(invoicing_batch, "schema_errors", broken)
    assert invoicing_batch.issue_invoices(paid[:1], IN_WINDOW) == 1
    monkeypatch.setattr(invoicing_batch, "schema_errors", lambda xml: ["wrong"] * 7)
    assert invoicing_batch.issue_invoices(paid[1:], IN_WINDOW) == 2
    logged = [(r.levelname, r.message) for r in caplog.records if r.name.endswith("batch")]
    assert [level for level, _ in logged] == ["ERROR", "ERROR", "ERROR"]
    assert "could not be loaded" in logged[0][1]
    assert logged[1][1].endswith("['wrong', 'wrong', 'wrong', 'wrong', 'wrong']")


def test_a_batch_settled_row_by_row_keeps_claimed_what_the_bank_left_unanswered(
    app, fake, dummy_customer, catalogue, card, monkeypatch
):
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(2)]
    open_all()
    charged_batch = charge_a_batch(svcs)

    def broken(*args):
        raise RuntimeError("deadlock detected")

    monkeypatch.setattr(batch, "settle", broken)
    fake.mode = "down"  # the per-row path asks the bank for each key: no answer
    outcomes, kept = batch.settle_batch(charged_batch, SETTLE_NOW, "w1", settings())
    assert outcomes == [RenewalOutcome.UNKNOWN] * 2
    assert kept == charged_batch.ids
    assert [renewal_of(s).claimed_by for s in svcs] == ["w1", "w1"]  # till the pass ends


def test_a_batch_of_successes_loads_no_order_when_every_receiver_takes_batches(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    """Renewals' and invoicing's receivers take `orders_paid`: `order_paid` per order (loading
    each order, its lines, payment and card) is for a receiver that does not."""
    jobs, answers = charged(create_customer, dummy_customer, catalogue, card)
    statements = []

    def executed(conn, cursor, statement, *args):
        statements.append(statement)

    def committed(conn):
        statements.append("COMMIT")

    event.listen(_db.engine, "before_cursor_execute", executed)
    event.listen(_db.engine, "commit", committed)
    try:
        batch_settle.settle(jobs, answers, SETTLE_NOW, settings())
    finally:
        event.remove(_db.engine, "before_cursor_execute", executed)
        event.remove(_db.engine, "commit", committed)
    before_commit = statements[: statements.index("COMMIT")]
    assert any(s.startswith('INSERT INTO "invoice"') for s in before_commit)
    assert not [s for s in before_commit if s.startswith(("SELECT payment.", "SELECT saved_card."))]


@pytest.mark.parametrize("path", ["batch", "row by row"])
def test_a_declined_batch_fails_its_renewals_with_the_retry_schedule(
    app, fake, dummy_customer, catalogue, card, monkeypatch, path
):
    svcs = [service(dummy_customer, catalogue, card, hours=h) for h in range(2)]
    open_all()
    fake.mode = "card_declined"
    charged_batch = charge_a_batch(svcs)
    if path == "row by row":

        def broken(*args):
            raise RuntimeError("deadlock detected")

        monkeypatch.setattr(batch, "settle", broken)
    outcomes, kept = batch.settle_batch(charged_batch, SETTLE_NOW, "w1", settings())
    assert (outcomes, kept) == ([RenewalOutcome.FAILED] * 2, [])
    rows = [renewal_of(s) for s in svcs]
    assert {(r.status, r.failure_code, r.claimed_by) for r in rows} == {
        (RenewalStatus.FAILED, "card_declined", None)
    }
    assert all(r.next_attempt_at > SETTLE_NOW for r in rows)
    # Settled as a batch, the bank is not asked again (the row-by-row path asks for each key).
    asked = len(fake.calls) + len(fake.finds)
    assert asked == 2 if path == "batch" else asked == 4


def test_a_pass_asks_the_bank_at_most_renewal_bank_threads_at_once(
    app, fake, dummy_customer, catalogue, card
):
    app.config["RENEWAL_BANK_THREADS"] = 1
    for h in range(4):
        service(dummy_customer, catalogue, card, hours=h)
    open_all()
    lock, in_flight, most = threading.Lock(), [0], [0]
    charge = fake.charge_token

    def counted(**kw):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.05)
            return charge(**kw)
        finally:
            with lock:
                in_flight[0] -= 1

    fake.charge_token = counted
    report = RenewalReport()
    batch.run_batches(IN_WINDOW, "w1", settings(), lambda: LEASE_NOW, report)
    assert (report.charged, most[0]) == (4, 1)


def test_batch_invoices_carry_each_order_s_lines_in_order_with_their_discount(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    paid = recorded_orders(create_customer, dummy_customer, catalogue, card)
    order = _db.session.get(Order, paid[0].order_id)
    order.discount_code = "PEC5"
    (first,) = order.lines
    first.discount_cents = 100
    second = OrderLine(
        order_id=order.id,
        product_id=first.product_id,
        product_name="PEC Pro",
        kind=first.kind,
        years=1,
        yearly_price_cents=2500,
        list_cents=2500,
        discount_cents=0,
        net_cents=2500,
    )
    _db.session.add(second)
    _db.session.commit()
    # The first line, updated last, lies last in its table: the document keeps the lines' order.
    _db.session.execute(
        text("UPDATE order_line SET years = years WHERE id = :id"), {"id": first.id}
    )
    _db.session.commit()
    invoicing_batch.issue_invoices(paid, IN_WINDOW)
    lines = invoice_of_order(order.id).lines
    assert [line["net_cents"] for line in lines] == [first.net_cents, 2500]
    assert lines[0]["description"].endswith(", codice sconto PEC5")


def test_record_refuses_a_clock_without_a_zone_and_writes_nothing(
    app, fake, create_customer, dummy_customer, catalogue, card
):
    jobs = plain_jobs(create_customer, dummy_customer, catalogue, card)
    with pytest.raises(Exception, match="naive datetime"):
        batch_record.record(jobs, IN_WINDOW.replace(tzinfo=None), "w1")
    _db.session.rollback()
    assert _db.session.scalars(select(Payment)).all() == []
    assert {_db.session.get(Renewal, j.renewal_id).attempts for j in jobs} == {0}


def test_a_job_takes_the_vat_rate_in_force(app, fake, dummy_customer, catalogue, card):
    app.config["VAT_RATE_PERCENT"] = 10
    svc = service(dummy_customer, catalogue, card)  # PEC-STD, 5.00 a year
    open_all()
    (job,), _ = batch_claim.split(claimed([svc]), IN_WINDOW, "w1", settings())
    assert (job.net_cents, job.vat_cents, job.total_cents) == (500, 50, 550)
