"""Issue 26: `flask seed-demo` tells a story (the demo customer's year, 90 days of sales), once,
and the same story on every machine for the same day."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from webapp.clock import as_utc
from webapp.demo import DEMO_EMAIL, seed
from webapp.demo_story import SALES_DAYS, seed_story
from webapp.invoicing.models import Invoice
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Refund, RefundStatus, SavedCard
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.shop.models import Customer, PaymentMethod
from webapp.shop.order_models import Order, OrderStatus


def tell(db, now) -> bool:
    demo = seed(now)
    db.session.commit()
    told = seed_story(now, demo)
    db.session.commit()
    return told


def digest(db) -> list[tuple]:
    """What a person would compare: every order's number, buyer, dates, amounts, state."""
    orders = db.session.scalars(select(Order).order_by(Order.id))
    return [
        (o.number, o.customer_id, as_utc(o.created_at), o.total_cents, o.status.value)
        for o in orders
    ]


def fresh_database(db) -> None:
    """Drop and recreate every table (the session released first: PostgreSQL waits for it)."""
    db.session.remove()
    db.drop_all()
    db.create_all()


def count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_demo_customer_has_a_year_to_show(db, now):
    assert tell(db, now)
    demo = db.session.scalar(select(Customer).where(Customer.email == DEMO_EMAIL))
    services = db.session.scalars(select(Service).where(Service.customer_id == demo.id)).all()
    active = [s for s in services if s.status is ServiceStatus.ACTIVE]
    soon = [s for s in active if as_utc(s.expires_at) - now <= timedelta(days=30)]
    assert len(soon) == 2  # PEC in 25 days, SPID in 10
    assert any(not s.auto_renew for s in active)  # Conservazione, turned off
    assert any(s.status is ServiceStatus.CANCELLED for s in services)  # the refunded order's
    expiring = [s.saved_card for s in soon if s.saved_card.exp_month == now.month]
    assert expiring and expiring[0].exp_year == now.year  # the card expires this month
    [failed] = db.session.scalars(select(Renewal).where(Renewal.status == RenewalStatus.FAILED))
    assert failed.service.customer_id == demo.id and as_utc(failed.next_attempt_at) > now
    [refund] = db.session.scalars(select(Refund))
    assert refund.status is RefundStatus.SUCCEEDED
    assert count(db, Invoice) == count(db, Refund) + db.session.scalar(
        select(func.count(Order.id)).where(Order.status == OrderStatus.PAID)
    )  # an invoice per paid order, a credit note per refund
    waiting = db.session.scalars(
        select(Order).where(
            Order.customer_id == demo.id, Order.status == OrderStatus.PENDING_PAYMENT
        )
    ).all()
    assert [o.payment_method for o in waiting] == [PaymentMethod.BANK_TRANSFER]
    # Nothing of the story waits in the outbox: those e-mails are history.
    assert not db.session.scalar(select(OutboxEmail.id).where(OutboxEmail.sent_at.is_(None)))


def test_ninety_days_of_sales_from_other_customers(db, now):
    tell(db, now)
    others = db.session.scalars(select(Customer).where(Customer.email != DEMO_EMAIL)).all()
    assert len(others) >= 10
    ids = [c.id for c in others]
    dates = db.session.scalars(select(Order.created_at).where(Order.customer_id.in_(ids)))
    days = {(now - as_utc(d)).days for d in dates}
    assert len(days) >= 45  # most days have a sale
    assert max(days) <= SALES_DAYS and min(days) >= 0
    assert count(db, SavedCard) >= len(others)


def test_seed_demo_is_idempotent_and_deterministic(db, now):
    assert tell(db, now)
    first = digest(db)
    customers, invoices = count(db, Customer), count(db, Invoice)
    assert not tell(db, now)  # a second run adds nothing
    assert digest(db) == first
    assert (count(db, Customer), count(db, Invoice)) == (customers, invoices)
    fresh_database(db)
    assert tell(db, now)  # a fresh database, the same day: the same story
    assert digest(db) == first
    later = now + timedelta(days=30)
    fresh_database(db)
    tell(db, later)  # another day: the same story, its dates moved with the day
    moved = digest(db)
    assert [row[2] - later for row in moved] == [row[2] - now for row in first]
