"""Which orders a customer can pay by card now, and why not (the packages above may refuse too)."""

from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.errors import InvalidChoice, InvalidTransition
from webapp.extensions import db
from webapp.payments.events import order_payable
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderKind, OrderStatus


def payable_order(order: Order, today: date) -> None:
    """Refuse to start a payment for an order that cannot be paid by card now."""
    if order.status is OrderStatus.PAID:
        raise InvalidTransition(_("L'ordine è già stato pagato."))
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition(_("L'ordine non può essere pagato."))
    if order.kind is OrderKind.RENEWAL:
        # Only the renewal engine charges it: a second payer could charge the period twice.
        raise InvalidTransition(
            _(
                "Questo rinnovo viene addebitato automaticamente: "
                "per cambiare carta vai all'area clienti."
            )
        )
    if order.payment_method is not PaymentMethod.CARD:
        raise InvalidChoice(_("Questo ordine si paga con bonifico bancario."))
    order_payable.send(order, today=today)  # the packages above may refuse, with the reason


def payable_orders(customer_id: int) -> list[Order]:
    """The customer's purchases still waiting for a card payment, newest first."""
    return list(
        db.session.scalars(
            select(Order)
            .where(
                Order.customer_id == customer_id,
                Order.status == OrderStatus.PENDING_PAYMENT,
                Order.kind == OrderKind.PURCHASE,
                Order.payment_method == PaymentMethod.CARD,
            )
            .order_by(Order.id.desc())
        )
    )
