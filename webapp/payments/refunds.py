"""Refunds: money given back on a captured payment, at most what was captured, never twice.

Two guards, both in the database:
- the amount: `refund_payment` reserves it with a compare-and-set on `Payment.refunded_cents`
  (`refunded_cents + amount <= amount_cents`), so two refunds at once cannot exceed the capture;
- the bank call: each refund has its own idempotency key (unique), recorded and committed before
  the bank is asked; an answer lost on the way is recovered by asking the bank for that key.
A refund that the bank refuses gives its reservation back. `payment_refunded` is announced once,
by the transition to SUCCEEDED (a compare-and-set), inside the transaction that records it.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp.errors import InvalidChoice, InvalidTransition
from webapp.extensions import db
from webapp.money import format_eur
from webapp.payments import verify
from webapp.payments.events import duplicate_captured, order_settling, payment_refunded
from webapp.payments.gateway import GatewayRefused, GatewayUnavailable, find_or_send
from webapp.payments.models import (
    CAPTURED_STATUSES,
    Payment,
    PaymentChannel,
    Refund,
    RefundKind,
    RefundStatus,
)
from webapp.payments.settlement import gateway
from webapp.statemachine import transition

log = logging.getLogger(__name__)

REFUND_TRANSITIONS = {
    RefundStatus.PENDING: {
        RefundStatus.SUCCEEDED,
        RefundStatus.FAILED,
        RefundStatus.UNKNOWN,
        RefundStatus.TO_VERIFY,
    },
    RefundStatus.UNKNOWN: {RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.TO_VERIFY},
}
OPEN_REFUND_STATUSES = (RefundStatus.PENDING, RefundStatus.UNKNOWN)
# A refund recorded this long ago and still open is retried by the reconciliation job.
STUCK_AFTER = timedelta(minutes=2)


def refundable_cents(payment: Payment) -> int:
    """What may still be given back on this payment."""
    if payment.status not in CAPTURED_STATUSES or payment.channel is PaymentChannel.BANK_TRANSFER:
        return 0
    return payment.amount_cents - payment.refunded_cents


def refund_payment(
    payment: Payment,
    amount_cents: int,
    *,
    kind: RefundKind,
    reason: str,
    now: datetime,
    requested_by: str | None = None,
    idempotency_key: str | None = None,
) -> Refund:
    """Record a refund and reserve its amount; the caller commits, then calls execute_refund."""
    if payment.status not in CAPTURED_STATUSES:
        raise InvalidTransition(_("Si può rimborsare solo un pagamento andato a buon fine."))
    if payment.channel is PaymentChannel.BANK_TRANSFER:
        raise InvalidChoice(_("Un bonifico si rimborsa con un bonifico: non passa dalla carta."))
    if not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidChoice(_("L'importo da rimborsare deve essere maggiore di zero."))
    # Guard: compare-and-set, so concurrent refunds never add up to more than the capture.
    reserved = db.session.execute(
        update(Payment)
        .where(
            Payment.id == payment.id,
            Payment.refunded_cents + amount_cents <= Payment.amount_cents,
        )
        .values(refunded_cents=Payment.refunded_cents + amount_cents)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(payment)
    if reserved != 1:
        raise InvalidChoice(
            _(
                "Si possono rimborsare al massimo %(amount)s su questo pagamento.",
                amount=format_eur(refundable_cents(payment)),
            )
        )
    refund = Refund(
        payment_id=payment.id,
        kind=kind,
        amount_cents=amount_cents,
        currency=payment.currency,
        reason=reason[:300],
        idempotency_key=idempotency_key or f"refund-{payment.id}-{secrets.token_hex(6)}",
        requested_by=requested_by,
        created_at=now,
    )
    refund.payment = payment
    db.session.add(refund)
    db.session.flush()
    return refund


@duplicate_captured.connect
def on_duplicate_captured(payment: Payment, *, now: datetime, **_) -> None:
    """A second capture for a paid order is refunded in full, in the transaction recording it."""
    refund_duplicate(payment, now)


def refund_duplicate(payment: Payment, now: datetime) -> Refund:
    """Give back a capture made for an order that another payment had already paid.

    One per payment: the idempotency key is derived from the payment, and unique.
    """
    key = f"duplicate-{payment.id}"
    existing = db.session.scalar(select(Refund).where(Refund.idempotency_key == key))
    if existing is not None:
        return existing
    return refund_payment(
        payment,
        payment.amount_cents - payment.refunded_cents,
        kind=RefundKind.DUPLICATE,
        reason=_("Pagamento duplicato: l'ordine era già stato pagato."),
        now=now,
        idempotency_key=key,
    )


def execute_refund(refund: Refund, now: datetime) -> Refund:
    """Ask the bank to refund (or, after a lost answer, what became of the refund); idempotent."""
    if refund.status not in OPEN_REFUND_STATUSES:
        return refund
    payment = refund.payment
    try:
        result = find_or_send(
            refund.status is RefundStatus.UNKNOWN,
            lambda: gateway().find_refund(refund.idempotency_key),
            lambda: gateway().refund(
                payment.gateway_ref,
                amount_cents=refund.amount_cents,
                currency=refund.currency,
                reason=refund.reason,
                idempotency_key=refund.idempotency_key,
            ),
        )
    except GatewayUnavailable as exc:
        log.warning("refund %s has an unknown outcome: %s", refund.id, exc)
        if refund.status is RefundStatus.PENDING:
            transition(
                refund, RefundStatus.UNKNOWN, REFUND_TRANSITIONS, _("Rimborso già concluso.")
            )
        return refund
    except GatewayRefused as exc:
        _refused(refund, exc.code, _("La banca ha rifiutato il rimborso."), now)
        return refund
    found = verify.refund_differences(refund, result)
    if found:  # another amount (less than asked), payment, currency or merchant: not refunded
        verify.hold_refund(refund, result, found, now, REFUND_TRANSITIONS)
        return refund
    succeed_refund(refund, result.refund_id, now)
    return refund


def succeed_refund(refund: Refund, gateway_ref: str, now: datetime) -> None:
    """The bank gave the money back: the refund succeeded, announced once (a compare-and-set),
    the order's services locked first (payments.events.order_settling)."""
    payment = refund.payment
    order_settling.send(payment.order)  # the rows payment_refunded's receivers change, first
    transition(
        refund,
        RefundStatus.SUCCEEDED,
        REFUND_TRANSITIONS,
        _("Rimborso già concluso."),
        gateway_ref=gateway_ref,
        completed_at=now,
    )
    payment_refunded.send(refund, payment=payment, now=now)


def _refused(refund: Refund, code: str | None, message: str, now: datetime) -> None:
    """The bank will not refund: record why and give the reserved amount back."""
    transition(
        refund,
        RefundStatus.FAILED,
        REFUND_TRANSITIONS,
        _("Rimborso già concluso."),
        failure_code=(code or "refused")[:40],
        failure_message=message[:300],
        completed_at=now,
    )
    db.session.execute(
        update(Payment)
        .where(Payment.id == refund.payment_id)
        .values(refunded_cents=Payment.refunded_cents - refund.amount_cents)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(refund.payment)


def open_refunds(now: datetime, older_than: timedelta = STUCK_AFTER) -> list[int]:
    """Refunds still to be executed or asked about (for the reconciliation job)."""
    return list(
        db.session.scalars(
            select(Refund.id)
            .where(Refund.status.in_(OPEN_REFUND_STATUSES), Refund.created_at <= now - older_than)
            .order_by(Refund.id)
        )
    )


def refunds_of_orders(order_ids: list[int]) -> dict[int, list[Refund]]:
    """The refunds of these orders, by order id (for the customer area)."""
    by_order: dict[int, list[Refund]] = {order_id: [] for order_id in order_ids}
    if by_order:
        rows = db.session.execute(
            select(Refund, Payment.order_id)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(Payment.order_id.in_(by_order))
            .order_by(Refund.id)
        )
        for refund, order_id in rows:
            by_order[order_id].append(refund)
    return by_order
