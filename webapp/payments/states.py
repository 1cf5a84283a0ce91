"""One state of an order after its payment, refunds and withdrawal, shown the same everywhere.

The order's own status says whether it was paid; what happened afterwards is in its refunds.
`order_state` puts the two together in the customer's words ("Pagato il 07/12/2026",
"Rimborsato in parte (€ 10,00)", "Annullato: recesso del 09/12/2026"), for the order page, the
customer's orders list and the back office alike. `closed` says nothing of it is in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from webapp.clock import format_day
from webapp.money import format_eur
from webapp.payments.models import Refund, RefundKind, RefundStatus
from webapp.payments.refunds import refunds_of_orders
from webapp.shop.order_models import Order, OrderStatus


@dataclass(frozen=True)
class OrderState:
    code: str  # pending, cancelled, paid, partly_refunded, refunded, withdrawn
    label: str
    refunded_cents: int = 0

    @property
    def closed(self) -> bool:
        """Withdrawn, refunded in full or cancelled: nothing of the order is in force."""
        return self.code in {"cancelled", "refunded", "withdrawn"}


def order_state(order: Order, refunds: list[Refund]) -> OrderState:
    """The order's state from its status and its refunds (all of them, any status)."""
    if order.status is OrderStatus.PENDING_PAYMENT:
        return OrderState("pending", _("In attesa di pagamento"))
    if order.status is OrderStatus.CANCELLED:
        return OrderState("cancelled", _("Annullato"))
    done = [r for r in refunds if r.status is RefundStatus.SUCCEEDED]
    refunded = sum(r.amount_cents for r in done)
    withdrawal = next((r for r in done if r.kind is RefundKind.WITHDRAWAL), None)
    if withdrawal is not None:
        day = format_day(withdrawal.completed_at or withdrawal.created_at)
        return OrderState("withdrawn", _("Annullato: recesso del %(day)s", day=day), refunded)
    if done and refunded >= order.total_cents:
        day = format_day(done[-1].completed_at or done[-1].created_at)
        return OrderState("refunded", _("Rimborsato il %(day)s", day=day), refunded)
    if done:
        label = _("Rimborsato in parte (%(amount)s)", amount=format_eur(refunded))
        return OrderState("partly_refunded", label, refunded)
    paid_on = format_day(order.paid_at) if order.paid_at else ""
    return OrderState("paid", _("Pagato il %(day)s", day=paid_on))


def order_states(orders: list[Order]) -> dict[int, OrderState]:
    """The states of many orders, their refunds read in one statement."""
    refunds = refunds_of_orders([o.id for o in orders])
    return {o.id: order_state(o, refunds[o.id]) for o in orders}
