"""The mock bank's merchant-initiated charges on saved cards, and the cards' tokens.

Explicit arguments, `now` passed in, flush but never commit; a charge is made once per
idempotency key (idempotency.replayed)."""

from __future__ import annotations

import secrets
from datetime import datetime

from . import cards
from .cards import Behaviour
from .errors import DECLINE_MESSAGES, UnknownToken
from .extensions import db
from .idempotency import replayed
from .models import Card, Charge, ChargeStatus, Payment, Refund

# ---- saved cards and charges -------------------------------------------------------------


def get_active_card(token: str) -> Card | None:
    """The saved card behind a token, unless it was deleted."""
    card = db.session.get(Card, token)
    return card if card is not None and card.revoked_at is None else None


def revoke_token(token: str, *, now: datetime) -> None:
    """Forget a saved card (idempotent: an unknown or deleted token is fine)."""
    card = db.session.get(Card, token)
    if card is not None and card.revoked_at is None:
        card.revoked_at = now
        db.session.flush()


def charge_token(
    *,
    token: str,
    amount_cents: int,
    currency: str,
    order_ref: str,
    description: str,
    initiator: str,
    idempotency_key: str,
    now: datetime,
) -> tuple[Charge, bool]:
    """Charge a saved card, or return the stored charge for a replayed key (created=False)."""
    behaviour = _card_behaviour(token)
    amount_cents, order_ref = cards.answered_charge(behaviour, amount_cents, order_ref)
    existing = replayed(
        Charge,
        idempotency_key,
        token=token,
        amount_cents=amount_cents,
        currency=currency,
        order_ref=order_ref,
    )
    if existing is not None:
        return existing, False
    card = get_active_card(token)
    if card is None:
        raise UnknownToken(token)
    code = _charge_decline_code(card, amount_cents, initiator, now)
    status = ChargeStatus.DECLINED if code else ChargeStatus.SUCCEEDED
    if status is ChargeStatus.SUCCEEDED and behaviour is Behaviour.PENDING:
        status = ChargeStatus.PENDING  # a wrong answer on purpose: nothing taken
    charge = Charge(
        id="ch_" + secrets.token_urlsafe(16),
        idempotency_key=idempotency_key,
        token=token,
        amount_cents=amount_cents,
        currency=currency,
        order_ref=order_ref,
        description=description,
        initiator=initiator,
        status=status,
        decline_code=code,
        decline_message=DECLINE_MESSAGES[code] if code else None,
        created_at=now,
    )
    db.session.add(charge)
    db.session.flush()  # the UNIQUE key decides a race between two identical requests
    return charge, True


def _card_behaviour(token: str) -> Behaviour | None:
    """The test-card behaviour behind a token (a deleted card's too), None if unknown."""
    card = db.session.get(Card, token)
    return None if card is None else cards.behaviour_for(card.pan)


def target_behaviour(target_id: str) -> Behaviour | None:
    """The test-card behaviour of the card that paid a payment or charge, None if unknown."""
    if target_id.startswith("ch_"):
        charge = db.session.get(Charge, target_id)
        return None if charge is None else _card_behaviour(charge.token)
    payment = db.session.get(Payment, target_id)
    return None if payment is None or payment.pan is None else cards.behaviour_for(payment.pan)


def answer_lost(row: Charge | Refund) -> bool:
    """The NO_ANSWER test card: the charge or refund is made, and its answer never arrives."""
    if isinstance(row, Charge):
        return _card_behaviour(row.token) is Behaviour.NO_ANSWER
    return target_behaviour(row.target_id) is Behaviour.NO_ANSWER


def decline_of_test_card(behaviour: Behaviour, amount_cents: int) -> str | None:
    """The decline code a test card's behaviour gives (a zero-amount verification has funds)."""
    if behaviour is Behaviour.DECLINED:
        return "card_declined"
    if behaviour is Behaviour.INSUFFICIENT_FUNDS and amount_cents > 0:
        return "insufficient_funds"
    if behaviour is Behaviour.EXPIRED:
        return "expired_card"
    return None


def _charge_decline_code(
    card: Card, amount_cents: int, initiator: str, now: datetime
) -> str | None:
    """A saved card is also declined once its own expiry date has passed.

    The SCA test card wants the customer authenticated again for each customer-initiated
    charge (PSD2); a merchant-initiated one (a renewal) is out of SCA scope and succeeds.
    """
    behaviour = cards.behaviour_for(card.pan)
    code = decline_of_test_card(behaviour, amount_cents)
    if code is None and cards.is_expired(card.exp_month, card.exp_year, now.date()):
        return "expired_card"
    if code is None and behaviour is Behaviour.SCA_REQUIRED and initiator == "customer":
        return "authentication_required"
    return code


def charge_to_dict(charge: Charge) -> dict[str, object]:
    """The charge API body."""
    return {
        "charge_id": charge.id,
        "status": str(charge.status),
        "amount_cents": charge.amount_cents,
        "currency": charge.currency,
        "order_ref": charge.order_ref,
        "decline_code": charge.decline_code,
        "decline_message": charge.decline_message,
        "refunded_cents": charge.refunded_cents,
    }
