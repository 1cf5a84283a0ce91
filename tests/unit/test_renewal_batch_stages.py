"""The renewal batch path's stages one at a time (PostgreSQL): what each writes and hands on.

test_renewal_batches.py runs whole passes; here each stage (claim, split, record, charge,
settle, release) and the batch invoices are called on their own, so that a wrong lease, price,
key, status or filter shows in the row it writes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import give_billing
from tests.unit.renewal_fakes import FakeGateway, make_card, make_service
from webapp.extensions import db as _db
from webapp.payments.gateway import GatewayUnavailable
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals import batch_charge, batch_claim, batch_record
from webapp.renewals.charging import open_renewals
from webapp.renewals.models import Renewal, RenewalStatus, ServiceStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import settings
from webapp.shop.models import PaymentMethod, ProductPrice, ServiceKind
from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus

pytestmark = pytest.mark.skipif(not PG_URL, reason="the batch path is PostgreSQL's")

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
IN_WINDOW = EXPIRES - timedelta(days=14)
LEASE_NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def fake(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


@pytest.fixture
def card(dummy_customer):
    return make_card(dummy_customer)


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
