"""Area clienti › Fatture: the customer's invoices and credit notes, the XML and a readable copy.

Every document is looked up through its owner: another customer's is 404.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from flask_login import current_user, login_required
from sqlalchemy import select

from webapp.extensions import db
from webapp.invoicing import archive, services
from webapp.invoicing.sdi_states import SdiState
from webapp.shop.order_models import Order
from webapp.shop.orders import get_order

bp = Blueprint("invoices", __name__, url_prefix="/area-clienti/fatture")


@bp.get("")
@login_required
def list_invoices():
    invoices = archive.list_invoices(current_user.id)
    missing = any(invoice.sdi_state is SdiState.MISSING_DATA for invoice in invoices)
    numbers = order_numbers(current_user.id, {invoice.order_id for invoice in invoices})
    return render_template(
        "area/invoices.html", invoices=invoices, missing_data=missing, order_numbers=numbers
    )


def order_numbers(customer_id: int, order_ids: set[int]) -> dict[int, str]:
    """The numbers of the customer's orders that the invoices belong to, by order id."""
    if not order_ids:
        return {}
    orders = db.session.scalars(
        select(Order).where(Order.customer_id == customer_id, Order.id.in_(order_ids))
    )
    return {order.id: order.number for order in orders}


@bp.get("/<int:invoice_id>")
@login_required
def view_invoice(invoice_id: int):
    """Copia di cortesia: the document as a page with a print stylesheet (not the legal copy)."""
    invoice = archive.get_invoice(invoice_id, current_user.id)
    return render_template(
        "invoicing/courtesy_copy.html",
        invoice=invoice,
        order=get_order(invoice.order_id, current_user.id),
        seller=services.seller_from_config(),
        buyer_name=services.display_name(invoice.customer),
    )


@bp.get("/<int:invoice_id>/xml")
@login_required
def download_xml(invoice_id: int):
    """The FatturaPA file as the SdI took it (as issued, until it is delivered)."""
    invoice = archive.get_invoice(invoice_id, current_user.id)
    name, xml = archive.legal_copy(invoice)
    return Response(
        xml,
        mimetype="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
