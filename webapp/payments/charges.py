"""Paying an order with a saved card (path 2): the intent on record, the charge, its answer.

The intent is committed before the bank is asked, with its idempotency key; an answer lost
leaves the payment UNKNOWN for the reconciliation job (stuck), never a second charge."""

from __future__ import annotations

import logging
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp.errors import InvalidChoice, InvalidTransition
from webapp.extensions import db
from webapp.payments import verify
from webapp.payments.cards import get_card
from webapp.payments.events import order_settling
from webapp.payments.gateway import ChargeResult, GatewayRefused, GatewayUnavailable, find_or_send
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.payments.payable import payable_order
from webapp.payments.settlement import (
    PAYMENT_TRANSITIONS,
    fail_payment,
    gateway,
    order_ref,
    succeed_payment,
)
from webapp.shop.order_models import Order, OrderStatus
from webapp.statemachine import transition

log = logging.getLogger(__name__)


def begin_saved_card_payment(
    order: Order, customer_id: int, card_id: int | str, attempt: str, today
) -> Payment:
    """Record the intent to charge a saved card (path 2); the caller commits before charging.

    Guard: a partial unique index allows one saved-card charge in flight per order. A twin (the
    same form posted twice, or Procedi in a second tab) joins the charge that exists: executing
    it again asks the bank with the same idempotency key, so the card is charged once. A twin
    that lost the insert gets IntegrityError; the view reruns this and then finds the winner's.
    """
    key = f"card-{order.id}-{attempt}"[:80]
    joined = db.session.scalar(
        select(Payment)
        .where(
            Payment.order_id == order.id,
            Payment.channel == PaymentChannel.SAVED_CARD,
            (Payment.idempotency_key == key)
            | Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.UNKNOWN]),
        )
        .order_by(Payment.id.desc())
    )
    if joined is not None:
        return joined  # this very form again (whatever its outcome), or the charge in flight
    payable_order(order, today)
    card = get_card(card_id, customer_id)
    if card.is_expired(today):
        raise InvalidChoice(_("La carta %(card)s è scaduta: scegline un'altra.", card=card.masked))
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.SAVED_CARD,
        amount_cents=order.total_cents,
        currency=order.currency,
        idempotency_key=key,
        saved_card_id=card.id,
    )
    db.session.add(payment)
    db.session.flush()
    # Guard: a compare-and-set that the order is still unpaid, once this charge is in. The
    # order read above may be stale: a twin's charge may have settled (and left the in-flight
    # index) since. Its settlement holds the order row until it commits, so this UPDATE waits
    # for it and then matches nothing; the caller rolls back and reports the order paid.
    unpaid = db.session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PENDING_PAYMENT)
        .values(status=OrderStatus.PENDING_PAYMENT)
        .execution_options(synchronize_session=False)
    ).rowcount
    if unpaid != 1:
        raise InvalidTransition(_("L'ordine è già stato pagato."))
    return payment


def execute_card_charge(payment: Payment, now: datetime, initiator: str = "customer") -> Payment:
    """Charge the payment's saved card at the bank and settle it; safe to call again."""
    if payment.status is not PaymentStatus.PENDING and payment.status is not PaymentStatus.UNKNOWN:
        return payment
    order = payment.order
    try:
        # UNKNOWN: we asked before and heard nothing, so ask what happened before charging again.
        result = find_or_send(
            payment.status is PaymentStatus.UNKNOWN,
            lambda: gateway().find_charge(payment.idempotency_key),
            lambda: gateway().charge_token(
                token=payment.saved_card.gateway_token,
                amount_cents=payment.amount_cents,
                currency=payment.currency,
                order_ref=order_ref(order),
                description=f"Ordine {order.number}",
                initiator=initiator,
                idempotency_key=payment.idempotency_key,
            ),
        )
    except (GatewayUnavailable, GatewayRefused) as exc:
        return apply_charge_result(payment, exc, now)
    return apply_charge_result(payment, result, now)


def apply_charge_result(
    payment: Payment,
    outcome: ChargeResult | GatewayUnavailable | GatewayRefused,
    now: datetime,
) -> Payment:
    """Settle a card charge with the bank's answer, or with the error met asking for it.

    Split from execute_card_charge so that a caller that asked the bank itself (the renewal
    engine, from a thread pool) settles through the same transitions."""
    if isinstance(outcome, GatewayUnavailable):
        log.warning("charge for payment %s has unknown outcome: %s", payment.id, outcome)
        if payment.status is PaymentStatus.PENDING:
            transition(
                payment, PaymentStatus.UNKNOWN, PAYMENT_TRANSITIONS, _("Pagamento già concluso.")
            )
        return payment
    if isinstance(outcome, GatewayRefused):
        fail_payment(
            payment,
            PaymentStatus.FAILED,
            outcome.code,
            _("Pagamento rifiutato dal servizio di pagamento."),
            now,
        )
        return payment
    result = outcome
    order_settling.send(payment.order)  # before this transaction writes anything (events)
    payment.gateway_ref = result.charge_id
    found = verify.charge_differences(payment, order_ref(payment.order), result)
    if found:  # another amount, currency, order or merchant, or not final: nothing is paid
        verify.hold(
            payment,
            found,
            taken_cents=verify.money_taken(result.status, result.amount_cents),
            currency=result.currency,
            now=now,
            allowed=PAYMENT_TRANSITIONS,
        )
        return payment
    if result.succeeded:
        succeed_payment(payment, payment.saved_card, now)
    else:
        fail_payment(
            payment,
            PaymentStatus.DECLINED,
            result.decline_code,
            result.decline_message or _("Pagamento rifiutato."),
            now,
        )
    return payment
