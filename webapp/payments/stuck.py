"""Payments left open (the reconciliation job): find them and bring them in line with the bank."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.extensions import db
from webapp.payments.charges import execute_card_charge
from webapp.payments.hosted import HOSTED_PAYMENT_REUSE, settle_hosted_payment
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.payments.settlement import PAYMENT_TRANSITIONS, fail_payment, gateway
from webapp.statemachine import transition

# A customer's card charge still PENDING after this long lost its request (a crash, a killed
# worker): the bank is asked what became of it. Far longer than any bank timeout.
CHARGE_STUCK_AFTER = timedelta(minutes=10)


def stuck_payments(now: datetime) -> list[int]:
    """Customer payments whose outcome nobody is waiting for: ask the bank about them.

    Card charges UNKNOWN, or PENDING past CHARGE_STUCK_AFTER; hosted payments still PENDING
    after HOSTED_PAYMENT_REUSE (the page may have been paid without the return reaching us).
    Renewal charges are the renewal engine's.
    """
    card = (Payment.channel == PaymentChannel.SAVED_CARD) & (
        (Payment.status == PaymentStatus.UNKNOWN)
        | (
            (Payment.status == PaymentStatus.PENDING)
            & (Payment.created_at <= now - CHARGE_STUCK_AFTER)
        )
    )
    hosted = (
        (Payment.channel == PaymentChannel.HOSTED_PAGE)
        & (Payment.status == PaymentStatus.PENDING)
        & Payment.gateway_ref.is_not(None)
        & (Payment.created_at <= now - HOSTED_PAYMENT_REUSE)
    )
    return list(db.session.scalars(select(Payment.id).where(card | hosted).order_by(Payment.id)))


def settle_stuck_payment(payment: Payment, now: datetime) -> Payment:
    """Bring one stuck payment in line with the bank; never charges a card the bank has not."""
    if payment.channel is PaymentChannel.HOSTED_PAGE:
        return settle_hosted_payment(payment.gateway_ref, now)
    if (
        payment.status is PaymentStatus.PENDING
        and gateway().find_charge(payment.idempotency_key) is None
    ):
        # The request died before the bank was asked: nothing was taken, free the order.
        fail_payment(
            payment, PaymentStatus.FAILED, "abandoned", _("Pagamento non completato."), now
        )
        return payment
    if payment.status is PaymentStatus.PENDING:
        transition(
            payment, PaymentStatus.UNKNOWN, PAYMENT_TRANSITIONS, _("Pagamento già concluso.")
        )
    return execute_card_charge(payment, now)
