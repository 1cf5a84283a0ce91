"""How a payment of an order ends: its transitions, success (the order paid once) and failure.

The rule that keeps money right: nothing is marked paid on the browser's word. A return
or a notification only makes the shop ask the bank, check amount and currency, and then
move payment and order with compare-and-set transitions (see webapp.statemachine). Also the
bank's client (gateway) and an order's reference at the bank (order_ref)."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _

from webapp.errors import InvalidTransition
from webapp.payments.events import duplicate_captured, order_paid, order_settling, payment_failed
from webapp.payments.gateway import Gateway
from webapp.payments.models import Payment, PaymentStatus, SavedCard
from webapp.shop.order_models import ORDER_TRANSITIONS, Order, OrderStatus
from webapp.statemachine import transition

log = logging.getLogger(__name__)

PAYMENT_TRANSITIONS = {
    PaymentStatus.PENDING: {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.DUPLICATE,
        PaymentStatus.DECLINED,
        PaymentStatus.FAILED,
        PaymentStatus.UNKNOWN,
        PaymentStatus.TO_VERIFY,
    },
    PaymentStatus.UNKNOWN: {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.DUPLICATE,
        PaymentStatus.DECLINED,
        PaymentStatus.FAILED,
        PaymentStatus.TO_VERIFY,
    },
}


def gateway() -> Gateway:
    return current_app.extensions["gateway"]


def order_ref(order: Order) -> str:
    return f"ORD-{order.id}"


def fail_payment(
    payment: Payment, status: PaymentStatus, code: str | None, message: str, now
) -> None:
    """The attempt ended without money taken; announced once (the transition is a CAS)."""
    transition(
        payment,
        status,
        PAYMENT_TRANSITIONS,
        _("Pagamento già concluso."),
        failure_code=(code or status.value)[:40],
        failure_message=message[:300],
        completed_at=now,
    )
    payment_failed.send(payment, now=now)


def succeed_payment(payment: Payment, card: SavedCard | None, now: datetime) -> None:
    """The bank captured this payment: the order is paid, once, by whichever capture gets there.

    Guard: the order moves PENDING_PAYMENT -> PAID with a compare-and-set first. The capture that
    wins it succeeds and announces `order_paid` (services, invoice, e-mail, in this transaction);
    any other capture of the same order is a DUPLICATE, recorded with its refund (the caller
    commits, then `execute_refund` gives the money back), never a second activation.
    """
    order = payment.order
    card_id = card.id if card else payment.saved_card_id
    order_settling.send(order)  # the rows order_paid's receivers change, locked first (again)
    try:
        transition(
            order,
            OrderStatus.PAID,
            ORDER_TRANSITIONS,
            _("L'ordine è già stato pagato."),
            paid_at=now,
        )
    except InvalidTransition:
        transition(
            payment,
            PaymentStatus.DUPLICATE,
            PAYMENT_TRANSITIONS,
            _("Pagamento già concluso."),
            completed_at=now,
            saved_card_id=card_id,
            failure_code="duplicate",
            failure_message=_("Pagamento duplicato: l'ordine era già pagato. Lo rimborsiamo."),
        )
        log.error("duplicate capture %s for paid order %s: refunding it", payment.id, order.id)
        duplicate_captured.send(payment, now=now)
        return
    transition(
        payment,
        PaymentStatus.SUCCEEDED,
        PAYMENT_TRANSITIONS,
        _("Pagamento già concluso."),
        completed_at=now,
        saved_card_id=card_id,
    )
    # Services, invoice and e-mail are the subscribers' (renewals, invoicing, notify).
    order_paid.send(order, payment=payment, card=card, now=now)
