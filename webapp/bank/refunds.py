"""The mock bank's refunds of a captured payment or charge, never above what was captured."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import update

from . import cards
from .charges import target_behaviour
from .errors import NotFound, RefundRefused
from .extensions import db
from .idempotency import replayed
from .models import Charge, ChargeStatus, Payment, PaymentStatus, Refund, RefundStatus

S = PaymentStatus


# ---- refunds -------------------------------------------------------------------------------


def refund(
    *,
    target_id: str,
    amount_cents: int,
    currency: str,
    reason: str,
    idempotency_key: str,
    now: datetime,
) -> tuple[Refund, bool]:
    """Refund (part of) a captured payment or charge, or replay the refund made with this key.

    Raises NotFound, RefundRefused or IdempotencyConflict; on RefundRefused the caller rolls
    back (the refund row was already flushed).
    """
    # The SHORT_REFUND test card gives back (and answers) less than asked.
    amount_cents = cards.answered_refund(target_behaviour(target_id), amount_cents)
    existing = replayed(
        Refund,
        idempotency_key,
        target_id=target_id,
        amount_cents=amount_cents,
        currency=currency,
        reason=reason,
    )
    if existing is not None:
        return existing, False
    target = _refundable(target_id)
    if currency != target.currency:
        raise RefundRefused("currency_mismatch")
    row = Refund(
        id="re_" + secrets.token_urlsafe(16),
        idempotency_key=idempotency_key,
        payment_id=target.id if isinstance(target, Payment) else None,
        charge_id=target.id if isinstance(target, Charge) else None,
        amount_cents=amount_cents,
        currency=currency,
        reason=reason,
        status=RefundStatus.SUCCEEDED,
        created_at=now,
    )
    db.session.add(row)
    # The UNIQUE key first: a twin of this very request waits here, fails, and replays ours.
    db.session.flush()
    _add_refunded(target, amount_cents)
    return row, True


def _refundable(target_id: str) -> Payment | Charge:
    """The payment or charge to refund, if money was captured by it."""
    target: Payment | Charge | None
    if target_id.startswith("ch_"):
        target = db.session.get(Charge, target_id)
        captured = target is not None and target.status == ChargeStatus.SUCCEEDED
    else:
        target = db.session.get(Payment, target_id)
        captured = target is not None and target.status == S.AUTHORISED
        # A zero-amount card verification took no money.
        captured = captured and target is not None and target.amount_cents > 0
    if target is None:
        raise NotFound(target_id)
    if not captured:
        raise RefundRefused("not_captured")
    return target


def _add_refunded(target: Payment | Charge, amount_cents: int) -> None:
    """Add to the refunded total unless it would exceed the captured amount.

    Guard: a compare-and-set UPDATE; the database checks the sum against the row as it is
    when the UPDATE runs (a concurrent refund's UPDATE waits on the row lock, then re-checks),
    never a total read earlier. A CHECK constraint backs it up.
    """
    model = type(target)
    result = db.session.execute(
        update(model)
        .where(
            model.id == target.id,
            model.refunded_cents + amount_cents <= model.amount_cents,
        )
        .values(refunded_cents=model.refunded_cents + amount_cents)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RefundRefused("amount_exceeds_captured")
    db.session.refresh(target)


def refund_to_dict(row: Refund) -> dict[str, object]:
    """The refund API body."""
    return {
        "refund_id": row.id,
        "payment_ref": row.target_id,
        "status": str(row.status),
        "amount_cents": row.amount_cents,
        "currency": row.currency,
        "reason": row.reason,
    }
