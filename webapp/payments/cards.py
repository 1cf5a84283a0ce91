"""A customer's saved cards: list, find and save (the bank keeps the number, the shop a token)."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.dbtypes import MAX_ID
from webapp.errors import InvalidTransition, NotFound
from webapp.extensions import db
from webapp.payments.gateway import CardDetails
from webapp.payments.models import SavedCard


def usable_cards(customer_id: int, today) -> list[SavedCard]:
    return [c for c in list_cards(customer_id) if not c.is_expired(today)]


def list_cards(customer_id: int) -> list[SavedCard]:
    """The customer's saved cards (removed ones excluded), newest first."""
    return list(
        db.session.scalars(
            select(SavedCard)
            .where(SavedCard.customer_id == customer_id, SavedCard.removed_at.is_(None))
            .order_by(SavedCard.id.desc())
        )
    )


def get_card(card_id: int | str, customer_id: int) -> SavedCard:
    """One of the customer's own saved cards; anything else is not found."""
    try:
        number = int(card_id)
    except (TypeError, ValueError):
        number = 0
    # Out of the id column's range is simply unknown (the database would overflow).
    card = db.session.get(SavedCard, number) if 0 < number <= MAX_ID else None
    if card is None or card.customer_id != customer_id or card.removed_at is not None:
        raise NotFound(_("Carta non trovata."))
    return card


def save_card(customer_id: int, details: CardDetails) -> SavedCard:
    """Keep the bank's token on the portal (once per token)."""
    card = db.session.scalar(select(SavedCard).where(SavedCard.gateway_token == details.token))
    if card is not None:
        if card.customer_id != customer_id:
            raise InvalidTransition(_("Token di carta non valido."))
        return card
    card = SavedCard(
        customer_id=customer_id,
        gateway_token=details.token,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        holder=details.holder,
    )
    db.session.add(card)
    db.session.flush()
    return card
