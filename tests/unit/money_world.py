"""Factories for the issue-20 tests (money after the first payment): orders confirmed through
the shop's own confirm and paid by card, so each order carries the buyer copied at confirm."""

from __future__ import annotations

import secrets
from datetime import datetime

from webapp.extensions import db
from webapp.payments.models import Payment, PaymentChannel, SavedCard
from webapp.payments.settlement import succeed_payment


def card_order(customer, products, now: datetime, skus=("PEC-STD",), years=1):
    """An order confirmed through the shop's confirm, paid by card (auto-renewal on)."""
    from tests.unit.invoicing_helpers import confirmed_order
    from webapp.shop.models import PaymentMethod

    return confirmed_order(customer, products, now, skus, years, PaymentMethod.CARD)


def card_of(customer, now: datetime) -> SavedCard:
    card = SavedCard(
        customer_id=customer.id,
        gateway_token=f"tok_{secrets.token_hex(4)}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=now.year + 4,
        holder=customer.name,
    )
    db.session.add(card)
    db.session.flush()
    return card


def pay_by_card(order, now: datetime, card: SavedCard | None = None) -> Payment:
    """Pay the order on the bank's page with a card that is saved: services start, renewing."""
    card = card or card_of(_customer(order), now)
    payment = Payment(
        order_id=order.id,
        order=order,
        channel=PaymentChannel.HOSTED_PAGE,
        amount_cents=order.total_cents,
        idempotency_key=secrets.token_hex(8),
        gateway_ref=f"pay_{secrets.token_hex(4)}",
        created_at=now,
    )
    db.session.add(payment)
    db.session.flush()
    succeed_payment(payment, card, now)
    db.session.commit()
    return payment


def _customer(order):
    from webapp.shop.models import Customer

    return db.session.get(Customer, order.customer_id)


def service_of_order(order):
    from sqlalchemy import select

    from webapp.renewals.models import Service

    return db.session.scalar(select(Service).where(Service.order_line_id == order.lines[0].id))


def renew_once(service, fake) -> Payment:
    """Run the renewal pass on the service's window day (the fake bank accepts): the payment."""
    from datetime import timedelta

    from sqlalchemy import select

    from webapp.clock import rome_date
    from webapp.renewals.engine import run_renewals
    from webapp.renewals.models import Renewal
    from webapp.renewals.scheduler import parse_as_of

    day = rome_date(service.expires_at)
    report = run_renewals(parse_as_of((day - timedelta(days=15)).isoformat()))
    assert report.charged == 1, report
    db.session.expire_all()
    renewal = db.session.scalar(
        select(Renewal).where(Renewal.service_id == service.id).order_by(Renewal.id.desc())
    )
    return db.session.scalar(select(Payment).where(Payment.order_id == renewal.order_id))


def refund_in_full(payment: Payment, now: datetime):
    """A staff refund of the whole payment, executed at the (fake) bank and committed."""
    from webapp.payments.models import RefundKind
    from webapp.payments.refunds import execute_refund, refund_payment

    refund = refund_payment(
        payment,
        payment.amount_cents - payment.refunded_cents,
        kind=RefundKind.OPERATOR,
        reason="test",
        now=now,
    )
    db.session.commit()
    execute_refund(refund, now)
    db.session.commit()
    return refund
