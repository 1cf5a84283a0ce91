"""Invoicing's answer to payments' events: an invoice per paid order, a credit note per refund.

The receivers run inside the transaction that moved the money and never commit: the document
and its number are committed with the payment, or rolled back with it (no gap in the series).
"""

from __future__ import annotations

from datetime import datetime

from webapp.invoicing.batch import issue_invoices
from webapp.invoicing.services import issue_credit_note, issue_invoice
from webapp.payments.events import (
    PaidOrder,
    handles_orders_paid,
    order_paid,
    orders_paid,
    payment_refunded,
)
from webapp.payments.models import Payment, Refund
from webapp.shop.order_models import Order


@order_paid.connect
@handles_orders_paid
def invoice_paid_order(
    order: Order, *, payment: Payment, now: datetime, batch_settled: bool = False, **_
) -> None:
    """Fattura (TD01) for a purchase or a renewal (a batch's orders: invoice_paid_orders)."""
    if not batch_settled:
        issue_invoice(order, payment, now)


@orders_paid.connect
def invoice_paid_orders(_sender, *, paid: list[PaidOrder], now: datetime, **_) -> None:
    """The same invoices for orders paid together (the renewal engine's batches), set-based."""
    issue_invoices(paid, now)


@payment_refunded.connect
def credit_refund(refund: Refund, *, now: datetime, **_) -> None:
    """Nota di credito (TD04) for a refund of an invoiced payment (none for a duplicate)."""
    issue_credit_note(refund, now)
