"""Bank transfers: staff record a transfer received, and the order is paid like any other.

The guards: the amount must be the order's total (a different amount is refused, never paid
in part); the CRO/TRN is unique on Payment.transfer_reference, so the same transfer recorded
twice (two operators, a double click) fails on the database; `succeed_payment` moves the order
with a compare-and-set, so an order is paid once.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.errors import DomainError, InvalidChoice, InvalidTransition
from webapp.extensions import db
from webapp.money import format_eur
from webapp.payments.events import order_settling
from webapp.payments.models import Payment, PaymentChannel
from webapp.payments.settlement import succeed_payment
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderKind, OrderStatus

REFERENCE_RE = re.compile(r"^[A-Z0-9]{6,35}$")


class TransferRefused(DomainError):
    """A transfer that cannot be recorded against this order, with the reason."""


def normalise_reference(raw: str) -> str:
    """CRO/TRN as banks print it, without spaces, upper case."""
    return re.sub(r"\s+", "", raw or "").upper()


def record_bank_transfer(
    order: Order,
    amount_cents: int,
    value_date: date,
    reference: str,
    now: datetime,
    recorded_by: str,
) -> Payment:
    """Record a transfer received for the order and mark the order paid (services, e-mail).

    Flushes; the caller commits (an IntegrityError on commit means the CRO/TRN is known).
    """
    reference = normalise_reference(reference)
    _check_transfer(order, amount_cents, value_date, reference, now)
    order_settling.send(order)  # before this transaction writes anything (events)
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.BANK_TRANSFER,
        amount_cents=amount_cents,
        currency=order.currency,
        idempotency_key=f"transfer-{reference}"[:80],
        transfer_reference=reference,
        value_date=value_date,
        recorded_by=recorded_by,
        created_at=now,
    )
    db.session.add(payment)
    db.session.flush()
    succeed_payment(payment, None, now)
    return payment


def _check_transfer(
    order: Order, amount_cents: int, value_date: date, reference: str, now: datetime
) -> None:
    """Refuse, with the reason in Italian, a transfer this order cannot take."""
    if not REFERENCE_RE.match(reference):
        raise InvalidChoice(_("Il CRO/TRN deve avere da 6 a 35 lettere o cifre."))
    if (
        order.kind is not OrderKind.PURCHASE
        or order.payment_method is not PaymentMethod.BANK_TRANSFER
    ):
        raise TransferRefused(_("Questo ordine non si paga con bonifico bancario."))
    if order.status is OrderStatus.PAID:
        raise InvalidTransition(_("L'ordine %(number)s è già stato pagato.", number=order.number))
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition(
            _("L'ordine %(number)s non può essere pagato.", number=order.number)
        )
    if amount_cents != order.total_cents:
        raise TransferRefused(
            _(
                "Importo del bonifico %(amount)s diverso dal totale dell'ordine %(total)s.",
                amount=format_eur(amount_cents),
                total=format_eur(order.total_cents),
            )
        )
    if value_date > now.date():
        raise InvalidChoice(_("La data valuta non può essere nel futuro."))
    known = db.session.scalar(select(Payment.id).where(Payment.transfer_reference == reference))
    if known is not None:
        raise TransferRefused(
            _("Il bonifico con CRO/TRN %(reference)s è già stato registrato.", reference=reference)
        )
