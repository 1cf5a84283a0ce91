"""Diritto di recesso from the customer area: /area-clienti/ordini/<id>/recesso.

A page that says whether (and until when) the order can be withdrawn from, and a POST that
refunds the payment in full (kind WITHDRAWAL): the services are then cancelled and one e-mail
is sent by the subscribers of `payment_refunded`.
"""

from __future__ import annotations

from flask import Blueprint, flash, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp.clock import now_utc
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.htmx import redirect_to
from webapp.payments import flows, withdrawal
from webapp.payments.models import RefundStatus
from webapp.shop.models import Customer
from webapp.shop.orders import get_order
from webapp.transaction import commit, rollback

bp = Blueprint("withdrawal", __name__, url_prefix="/area-clienti/ordini")


def _page(order, status: int = 200, error: str | None = None):
    customer = db.session.get(Customer, current_user.id)
    return render_template(
        "area/withdrawal.html",
        order=order,
        refusal=withdrawal.withdrawal_refusal(order, customer, now_utc()),
        deadline=withdrawal.deadline_label(order),
        error=error,
    ), status


@bp.get("/<int:order_id>/recesso")
@login_required
def show_withdrawal(order_id: int):
    return _page(get_order(order_id, current_user.id))


@bp.post("/<int:order_id>/recesso")
@login_required
def withdraw(order_id: int):
    """Withdraw: full refund, services cancelled, auto-renewal off, one e-mail."""
    order = get_order(order_id, current_user.id)
    customer = db.session.get(Customer, current_user.id)
    try:
        refund = withdrawal.withdraw(order, customer, now_utc())
    except DomainError as exc:
        rollback()
        return _page(order, 422, exc.message)
    commit()
    refund = flows.run_refund(refund.id, now_utc())
    if refund.status is not RefundStatus.SUCCEEDED:
        return _page(
            order, 422, _("La banca non ha ancora confermato il rimborso: riprova tra poco.")
        )
    flash(
        _("Recesso registrato: ti rimborsiamo l'ordine %(number)s.", number=order.number), "success"
    )
    return redirect_to(url_for("area.orders"))
