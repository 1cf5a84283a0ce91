"""A stand-in for the lead's webapp.payments.refunds, for this branch's tests only.

Same interface: refund_payment(payment, amount_cents, *, kind, reason, now, requested_by) records
a Refund (reserving the amount with a compare-and-set on Payment.refunded_cents) and flushes;
execute_refund(refund, now) marks it succeeded and sends `payment_refunded`. No bank is asked.
Installed only when the real module is missing (it lands at merge).
"""

from __future__ import annotations

import importlib
import sys
import types

from sqlalchemy import update

from webapp.errors import DomainError
from webapp.extensions import db
from webapp.money import format_eur
from webapp.payments.events import payment_refunded
from webapp.payments.models import CAPTURED_STATUSES, Payment, Refund, RefundStatus


def refund_payment(payment, amount_cents, *, kind, reason, now, requested_by):
    if payment.status not in CAPTURED_STATUSES:
        raise DomainError("Il pagamento non è stato incassato: niente da rimborsare.")
    moved = db.session.execute(
        update(Payment)
        .where(
            Payment.id == payment.id,
            Payment.refunded_cents + amount_cents <= Payment.amount_cents,
        )
        .values(refunded_cents=Payment.refunded_cents + amount_cents)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise DomainError(
            f"Il rimborso di {format_eur(amount_cents)} supera l'importo ancora rimborsabile."
        )
    db.session.refresh(payment)
    refund = Refund(
        payment_id=payment.id,
        kind=kind,
        amount_cents=amount_cents,
        reason=reason,
        idempotency_key=f"refund-{payment.id}-{payment.refunded_cents}",
        requested_by=requested_by,
        created_at=now,
    )
    db.session.add(refund)
    db.session.flush()
    return refund


def execute_refund(refund, now):
    refund.status = RefundStatus.SUCCEEDED
    refund.completed_at = now
    db.session.flush()
    payment_refunded.send(refund, payment=refund.payment, now=now)
    return refund


def install() -> bool:
    """Put the fake in place of webapp.payments.refunds when that module does not exist."""
    try:
        importlib.import_module("webapp.payments.refunds")
        return False
    except ModuleNotFoundError:
        module = types.ModuleType("webapp.payments.refunds")
        module.refund_payment = refund_payment
        module.execute_refund = execute_refund
        module.FAKE = True
        sys.modules["webapp.payments.refunds"] = module
        return True
