"""Diritto di recesso: a consumer may withdraw from a purchase within 14 days of payment.

Not a consumer (the order was invoiced to a business or a public administration: the buyer
copied onto the order at confirm, not the registration's tax code), past the
14 days, or having asked at checkout for the services to start at once and acknowledged losing
the right: refused, with the reason. A withdrawal is a full refund of kind WITHDRAWAL; the
services are cancelled by renewals' `payment_refunded` subscriber, the e-mail by notify's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.clock import as_utc, format_day
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.payments import refunds
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from webapp.shop.billing import is_consumer_order
from webapp.shop.models import Customer, PaymentMethod
from webapp.shop.order_models import Order, OrderKind, OrderStatus

WITHDRAWAL_DAYS = 14
CARD_CHANNELS = {PaymentChannel.HOSTED_PAGE, PaymentChannel.SAVED_CARD}
WITHDRAWAL_REASON = _l("Diritto di recesso esercitato dal cliente")


class WithdrawalRefused(DomainError):
    """The order cannot be withdrawn from; the message says why."""


def withdrawal_deadline(order: Order) -> datetime | None:
    return as_utc(order.paid_at) + timedelta(days=WITHDRAWAL_DAYS) if order.paid_at else None


def paying_payment(order: Order) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED
        )
    )


def withdrawal_refusal(order: Order, customer: Customer, now: datetime) -> str | None:
    """Why this order cannot be withdrawn from now, or None when it can."""
    if order.kind is not OrderKind.PURCHASE or order.status is not OrderStatus.PAID:
        return _("Il recesso è possibile solo per un acquisto pagato.")
    if not is_consumer_order(order):
        return _(
            "Il diritto di recesso spetta ai consumatori: questo ordine è intestato a "
            "un'azienda o a un ente."
        )
    if order.immediate_start_at is not None:
        return _(
            "All'acquisto hai chiesto l'attivazione immediata dei servizi e hai accettato "
            "di perdere il diritto di recesso."
        )
    deadline = withdrawal_deadline(order)
    if deadline is None or now > deadline:
        return _("Il termine di %(days)d giorni per il recesso è scaduto.", days=WITHDRAWAL_DAYS)
    payment = paying_payment(order)
    if payment is None or payment.channel not in CARD_CHANNELS:
        return _("Per il recesso da un ordine pagato con bonifico contatta l'assistenza.")
    if payment.refunded_cents:
        return _("Questo ordine è già stato rimborsato.")
    return None


def may_withdraw(order: Order, refunds: list[Refund], now: datetime) -> bool:
    """withdrawal_refusal(...) is None, from the order and its refunds already read (for the
    orders list, without a statement per order): where "Recesso" is offered."""
    deadline = withdrawal_deadline(order)
    return (
        order.kind is OrderKind.PURCHASE
        and order.status is OrderStatus.PAID
        and order.immediate_start_at is None
        and deadline is not None
        and now <= deadline
        and order.payment_method is PaymentMethod.CARD
        and all(r.status is RefundStatus.FAILED for r in refunds)
        and is_consumer_order(order)
    )


def withdraw(order: Order, customer: Customer, now: datetime) -> Refund:
    """Record the full refund of the order's payment (kind WITHDRAWAL); flushes.

    The caller commits, then calls `execute_refund` and commits again.
    """
    reason = withdrawal_refusal(order, customer, now)
    if reason is not None:
        raise WithdrawalRefused(reason)
    payment = paying_payment(order)
    return refunds.refund_payment(
        payment,
        payment.amount_cents,
        kind=RefundKind.WITHDRAWAL,
        reason=str(WITHDRAWAL_REASON),
        now=now,
        requested_by=None,
    )


def deadline_label(order: Order) -> str:
    deadline = withdrawal_deadline(order)
    return format_day(deadline) if deadline else ""
