"""Factories for the issue-20 tests (money after the first payment): orders confirmed through
the shop's own confirm and paid by card, so each order carries the buyer copied at confirm."""

from __future__ import annotations

import secrets
from datetime import datetime

from webapp.extensions import db
from webapp.payments.models import Payment, PaymentChannel, SavedCard
from webapp.payments.services import succeed_payment


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
