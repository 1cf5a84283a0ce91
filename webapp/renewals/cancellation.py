"""A payment refunded in full undoes exactly the period it paid: renewals' answer to
`payment_refunded`.

Each paying payment covers one period of each service it bought: a purchase the years of its
line from the start, a renewal the years from the expiry it renewed. Refunding it in full
removes that period and no other: the expiry moves back by those years (to the renewed expiry
when it was the last period), auto-renewal stays as the customer had it, and the service is
cancelled only when no payment still covers any of it. A partial refund changes no period.
A refunded renewal is not charged again for the same period (its Renewal row stays closed).

Runs inside the refunding transaction (the caller commits); the refund's own transition to
SUCCEEDED (a compare-and-set) announces it once, and each expiry moves with a compare-and-set
on the expiry read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from webapp.clock import add_years, as_utc
from webapp.extensions import db
from webapp.payments.events import payment_refunded
from webapp.payments.models import Payment, PaymentStatus, Refund
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.shop.order_models import Order, OrderKind, OrderLine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Period:
    """The part of a service one payment paid: `years` from `starts_at`."""

    service: Service
    starts_at: datetime
    years: int

    @property
    def ends_at(self) -> datetime:
        return add_years(self.starts_at, self.years)


@payment_refunded.connect
def on_payment_refunded(refund: Refund, *, payment: Payment, now: datetime, **_) -> None:
    """When the paying payment of an order is refunded in full, remove the periods it paid."""
    if payment.status is not PaymentStatus.SUCCEEDED:
        return  # a duplicate (or anything else) never paid a period
    if payment.refunded_cents < payment.amount_cents:
        return  # a partial refund: the periods stay paid
    for period in periods_paid_by(payment.order):
        remove_period(period, payment, now)
    db.session.flush()


def services_stopped_by(payment: Payment) -> list[Service]:
    """The services a full refund of `payment` cancels: those of the periods it paid that no
    other payment covers (none for a partial refund or a duplicate). It reads the same before
    and after on_payment_refunded ran, so the refund e-mail can name them whichever receiver of
    `payment_refunded` runs first."""
    if payment.status is not PaymentStatus.SUCCEEDED:
        return []
    if payment.refunded_cents < payment.amount_cents:
        return []
    periods = periods_paid_by(payment.order)
    return [p.service for p in periods if not still_paid(p.service, payment)]


def periods_paid_by(order: Order) -> list[Period]:
    """The periods of services an order's payment paid (none for an unpaid order)."""
    if order.kind is OrderKind.RENEWAL:
        renewal = db.session.scalar(
            select(Renewal).where(
                Renewal.order_id == order.id, Renewal.status == RenewalStatus.SUCCEEDED
            )
        )
        if renewal is None:
            return []
        return [Period(renewal.service, as_utc(renewal.period_expires_at), order.lines[0].years)]
    periods = []
    for line in order.lines:
        if line.service_id is not None:  # a renewal line by hand: from the expiry it renewed
            if _took_its_period(line.id):  # a refunded twin did not
                service = db.session.get(Service, line.service_id)
                periods.append(Period(service, as_utc(line.renews_from), line.years))
            continue
        service = db.session.scalar(select(Service).where(Service.order_line_id == line.id))
        if service is not None:
            periods.append(Period(service, as_utc(service.started_at), line.years))
    return periods


def _took_its_period(order_line_id: int) -> bool:
    return (
        db.session.scalar(
            select(Renewal.id).where(
                Renewal.order_line_id == order_line_id, Renewal.status == RenewalStatus.SUCCEEDED
            )
        )
        is not None
    )


def still_paid(service: Service, refunded: Payment) -> bool:
    """Does a payment other than `refunded` still cover a period of the service?"""
    paid = (Renewal.service_id == service.id, Renewal.status == RenewalStatus.SUCCEEDED)
    renewal_orders = select(Renewal.order_id).where(*paid, Renewal.order_id.is_not(None))
    # Renewals by hand: the order of the renewal line that took the period.
    by_hand = (
        select(OrderLine.order_id).join(Renewal, Renewal.order_line_id == OrderLine.id).where(*paid)
    )
    purchase_order = select(Order.id).where(Order.lines.any(id=service.order_line_id))
    covering = db.session.scalar(
        select(func.count(Payment.id)).where(
            Payment.id != refunded.id,
            Payment.status == PaymentStatus.SUCCEEDED,
            Payment.refunded_cents < Payment.amount_cents,
            Payment.order_id.in_(renewal_orders.union(by_hand, purchase_order)),
        )
    )
    return bool(covering)


def remove_period(period: Period, refunded: Payment, now: datetime) -> None:
    """Move the service's expiry back by the period; cancel it when nothing else is paid."""
    service = period.service
    old = as_utc(service.expires_at)
    # The last period: back to the expiry it renewed; one with later periods after it: back
    # by its years (the later ones keep their length).
    new = period.starts_at if old == period.ends_at else add_years(old, -period.years)
    values: dict = {"expires_at": new}
    if service.status is not ServiceStatus.CANCELLED and not still_paid(service, refunded):
        values.update(status=ServiceStatus.CANCELLED, auto_renew=False, cancelled_at=now)
    elif service.status is ServiceStatus.ACTIVE and new <= now:
        values.update(status=ServiceStatus.EXPIRED)
    # Guard: compare-and-set on the expiry read, so a period is removed once.
    moved = db.session.execute(
        update(Service)
        .where(Service.id == service.id, Service.expires_at == old)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(service)
    if moved != 1:
        log.error("service %s moved on from %s: period of payment %s", service.id, old, refunded.id)
        return
    log.info("service %s: period of payment %s removed, expiry %s", service.id, refunded.id, new)
