"""The card picker's reads in one statement: the order's total and the customer's saved cards.

Selecting a card re-renders the picker (an htmx fragment) on every change; it shows only the
order's id and total and the cards, so they come as plain rows from one Core SELECT instead of
an Order and its SavedCards through the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, select

from webapp.errors import NotFound
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.shop.order_models import Order


@dataclass(frozen=True)
class OrderTotal:
    """What the picker shows of an order."""

    id: int
    total_cents: int


@dataclass(frozen=True)
class CardRow:
    """A saved card as a plain row, shown exactly as SavedCard shows itself."""

    id: int
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    holder: str

    removed_at = None  # only saved cards not removed are read as rows
    is_expired = SavedCard.is_expired
    brand_label = SavedCard.brand_label
    masked = SavedCard.masked
    expiry_label = SavedCard.expiry_label


# The saved_card columns a CardRow holds, in its fields' order.
CARD_COLUMNS = tuple(field.name for field in fields(CardRow))

_order, _card = Order.__table__, SavedCard.__table__
_STATEMENT = (  # built once: a request binds the order and the customer
    select(_order.c.total_cents, *(_card.c[name] for name in CARD_COLUMNS))
    .select_from(
        _order.outerjoin(
            _card, and_(_card.c.customer_id == _order.c.customer_id, _card.c.removed_at.is_(None))
        )
    )
    .where(_order.c.id == bindparam("order"), _order.c.customer_id == bindparam("customer"))
    .order_by(_card.c.id.desc())
)


def order_and_cards(order_id: int, customer_id: int) -> tuple[OrderTotal, list[CardRow]]:
    """The customer's order (another customer's is not found) and saved cards, newest first,
    removed ones excluded, as payments.cards.list_cards lists them."""
    rows = db.session.execute(_STATEMENT, {"order": order_id, "customer": customer_id}).all()
    if not rows:
        raise NotFound(_("Ordine non trovato."))
    cards = [CardRow(*row[1:]) for row in rows if row.id is not None]
    return OrderTotal(order_id, rows[0].total_cents), cards


_CARDS = (
    select(*(_card.c[name] for name in CARD_COLUMNS))
    .where(_card.c.customer_id == bindparam("customer"), _card.c.removed_at.is_(None))
    .order_by(_card.c.id.desc())
)


def card_rows(customer_id: int) -> list[CardRow]:
    """The customer's saved cards as rows, listed as payments.cards.list_cards lists them."""
    return [CardRow(*row) for row in db.session.execute(_CARDS, {"customer": customer_id})]
