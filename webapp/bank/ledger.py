"""What the mock bank shows of its money: the sandbox's ledger of movements, counters for tests
and euros written the Italian way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from babel.numbers import format_currency
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .extensions import db
from .models import Charge, ChargeStatus, Payment, PaymentStatus, Refund

S = PaymentStatus


def format_eur(amount_cents: int) -> str:
    """Cents the Italian way: 123456 -> '€ 1.234,56'."""
    amount = Decimal(amount_cents) / 100
    return format_currency(
        amount, "EUR", format="¤ #,##0.00", locale="it_IT", currency_digits=False
    )


@dataclass(frozen=True)
class Movement:
    """One line of the sandbox's ledger page: money taken or given back."""

    at: datetime
    kind: str  # "pagamento" | "addebito" | "rimborso"
    ref: str
    order_ref: str
    amount_cents: int  # negative for a refund
    detail: str


def movements(limit: int = 200) -> list[Movement]:
    """Captured payments, charges (succeeded or declined) and refunds, newest first."""
    payments = db.session.scalars(
        select(Payment)
        .where(Payment.status == S.AUTHORISED, Payment.amount_cents > 0)
        .order_by(Payment.finished_at.desc())
        .limit(limit)
    )
    charges = db.session.scalars(select(Charge).order_by(Charge.created_at.desc()).limit(limit))
    refunds = db.session.scalars(
        select(Refund)
        .options(selectinload(Refund.payment), selectinload(Refund.charge))
        .order_by(Refund.created_at.desc())
        .limit(limit)
    )
    rows = [
        *(_payment_movement(p) for p in payments),
        *(_charge_movement(c) for c in charges),
        *(_refund_movement(r) for r in refunds),
    ]
    return sorted(rows, key=lambda m: m.at, reverse=True)[:limit]


def _payment_movement(payment: Payment) -> Movement:
    assert payment.finished_at is not None
    return Movement(
        payment.finished_at,
        "pagamento",
        payment.id,
        payment.order_ref,
        payment.amount_cents,
        _refunded_note(payment.refunded_cents),
    )


def _charge_movement(charge: Charge) -> Movement:
    declined = charge.status == ChargeStatus.DECLINED
    detail = f"rifiutato: {charge.decline_code}" if declined else ""
    who = "cliente" if charge.initiator == "customer" else "esercente"
    detail = " · ".join(
        x for x in (f"avviato da {who}", detail, _refunded_note(charge.refunded_cents)) if x
    )
    return Movement(
        charge.created_at,
        "addebito",
        charge.id,
        charge.order_ref,
        0 if declined else charge.amount_cents,
        detail,
    )


def _refund_movement(row: Refund) -> Movement:
    order_ref = (row.payment or row.charge).order_ref  # type: ignore[union-attr]
    return Movement(row.created_at, "rimborso", row.id, order_ref, -row.amount_cents, row.reason)


def _refunded_note(refunded_cents: int) -> str:
    return f"rimborsato {format_eur(refunded_cents)}" if refunded_cents else ""


def stats() -> Mapping[str, int]:
    """Counters for tests: succeeded charges and authorised payments."""
    charges = db.session.scalar(
        select(func.count()).select_from(Charge).filter_by(status=ChargeStatus.SUCCEEDED)
    )
    payments = db.session.scalar(
        select(func.count()).select_from(Payment).filter_by(status=S.AUTHORISED)
    )
    return {"charges_succeeded": charges or 0, "payments_authorised": payments or 0}
