"""A customer's orders: read one or all, cancel an unpaid one (its codice sconto use given back)."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from webapp.errors import NotFound
from webapp.extensions import db
from webapp.shop.order_models import ORDER_TRANSITIONS, DiscountRedemption, Order, OrderStatus
from webapp.statemachine import transition


def cancel_order(order: Order, now: datetime) -> None:
    """Cancel an unpaid order; its codice sconto use is given back to the customer."""
    transition(
        order, OrderStatus.CANCELLED, ORDER_TRANSITIONS, _("L'ordine non è più annullabile.")
    )
    db.session.execute(
        update(DiscountRedemption)
        .where(DiscountRedemption.order_id == order.id)
        .values(slot=None)
        .execution_options(synchronize_session=False)
    )


def get_order(order_id: int, customer_id: int) -> Order:
    """An order of this customer; another customer's order is simply not found."""
    order = db.session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        raise NotFound(_("Ordine non trovato."))
    return order


def list_orders(customer_id: int) -> list[Order]:
    return list(
        db.session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .options(selectinload(Order.lines))
            .order_by(Order.id.desc())
        )
    )
