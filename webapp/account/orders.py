"""The order page: what was bought, "Paga ora su server sicuro", and the services once paid.

It lives above shop, payments and renewals because it shows a bit of each.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from webapp.clock import now_utc, rome_date
from webapp.payments.cards import usable_cards
from webapp.payments.states import order_states
from webapp.renewals.services import services_of_order
from webapp.shop.orders import get_order

bp = Blueprint("orders", __name__)


@bp.get("/ordini/<int:order_id>")
@login_required
def view_order(order_id: int):
    """One of the customer's orders (another customer's is 404)."""
    order = get_order(order_id, current_user.id)
    return render_template(
        "shop/order.html",
        order=order,
        state=order_states([order])[order.id],
        services=services_of_order(order),
        has_cards=bool(usable_cards(current_user.id, rome_date(now_utc()))),
    )
