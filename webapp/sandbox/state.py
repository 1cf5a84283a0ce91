"""What the sandbox answers: orders, payments, services, cards and e-mails as plain JSON values.

Orders are read through the back office's own `order_file`, so QA sees what operators see.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select

from webapp.backoffice.files import customer_file, order_file
from webapp.clock import as_utc
from webapp.extensions import db
from webapp.invoicing.models import Invoice
from webapp.outbox.models import OutboxEmail
from webapp.outbox.services import bodies
from webapp.payments.cards import list_cards
from webapp.payments.models import Payment, Refund, SavedCard
from webapp.payments.settlement import order_ref
from webapp.renewals.models import Renewal, Service
from webapp.shop.models import Customer
from webapp.shop.order_models import Order

LINK = re.compile(r"https?://[^\s<>\"')\]]+")


def iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def order_state(order: Order) -> dict[str, Any]:
    """The order, its lines, payments, refunds, services, renewals and invoices."""
    file = order_file(order)
    return {
        "id": order.id,
        "number": order.number,
        "kind": order.kind.value,
        "status": order.status.value,
        "customer": file.customer.email,
        "bank_ref": order_ref(order),
        "payment_method": order.payment_method.value,
        "discount_code": order.discount_code,
        "subtotal_cents": order.subtotal_cents,
        "discount_cents": order.discount_cents,
        "net_cents": order.net_cents,
        "vat_cents": order.vat_cents,
        "total_cents": order.total_cents,
        "created_at": iso(order.created_at),
        "paid_at": iso(order.paid_at),
        "lines": [
            {
                "product": line.product_name,
                "years": line.years,
                "auto_renew": line.auto_renew,
                "net_cents": line.net_cents,
            }
            for line in order.lines
        ],
        "payments": [payment_state(p) for p in file.payments],
        "refunds": [refund_state(r) for r in file.refunds],
        "services": [service_state(s) for s in sorted(file.services, key=lambda s: s.id)],
        "renewals": [renewal_state(r) for r in file.renewals],
        "invoices": [invoice_state(i) for i in invoices_of(order.id)],
    }


def payment_state(payment: Payment) -> dict[str, Any]:
    card: SavedCard | None = payment.saved_card
    return {
        "id": payment.id,
        "channel": payment.channel.value,
        "status": payment.status.value,
        "amount_cents": payment.amount_cents,
        "refunded_cents": payment.refunded_cents,
        "gateway_ref": payment.gateway_ref,
        "card_last4": card.last4 if card else None,
        "created_at": iso(payment.created_at),
    }


def refund_state(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "kind": refund.kind.value,
        "status": refund.status.value,
        "amount_cents": refund.amount_cents,
    }


def service_state(service: Service) -> dict[str, Any]:
    return {
        "id": service.id,
        "sku": service.product.sku,
        "product": service.product.name,
        "status": service.status.value,
        "started_at": iso(service.started_at),
        "expires_at": iso(service.expires_at),
        "auto_renew": service.auto_renew,
        "frequency_years": service.frequency_years,
        "card_last4": service.saved_card.last4 if service.saved_card else None,
    }


def renewal_state(renewal: Renewal) -> dict[str, Any]:
    return {
        "id": renewal.id,
        "service_id": renewal.service_id,
        "order_id": renewal.order_id,
        "status": renewal.status.value,
        "period_expires_at": iso(renewal.period_expires_at),
        "attempts": renewal.attempts,
        "next_attempt_at": iso(renewal.next_attempt_at),
        "failure_reason": renewal.failure_reason,
    }


def invoices_of(order_id: int) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.order_id == order_id)))


def invoice_state(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "kind": invoice.kind.value,
        "number": f"{invoice.year}/{invoice.number:06d}",
        "file_name": invoice.file_name,
        "total_cents": invoice.total_cents,
        "paid_cents": invoice.paid_cents,
        "sdi": sdi_state(invoice),
    }


def sdi_state(invoice: Invoice) -> str | None:
    """The invoice's state at the SdI (Sistema di Interscambio), once invoices are transmitted.

    SdI transmission is not part of the invoice model yet: when it is, return its state here
    (e.g. "inviata", "consegnata", "scartata"); until then there is none to show.
    """
    state = getattr(invoice, "sdi_status", None)
    return getattr(state, "value", state)


def customer_state(customer: Customer) -> dict[str, Any]:
    """The customer's orders (newest first), services and saved cards."""
    file = customer_file(customer)
    return {
        "email": customer.email,
        "name": customer.name,
        "orders": [
            {
                "id": o.id,
                "number": o.number,
                "kind": o.kind.value,
                "status": o.status.value,
                "total_cents": o.total_cents,
            }
            for o in file.orders
        ],
        "services": [service_state(s) for s in sorted(file.services, key=lambda s: s.id)],
        "cards": [
            {"id": c.id, "brand": c.brand, "last4": c.last4, "holder": c.holder}
            for c in list_cards(customer.id)
        ],
    }


def emails_to(address: str, since: datetime | None) -> list[dict[str, Any]]:
    """The e-mails queued for an address (since a moment), oldest first, with their links."""
    stmt = select(OutboxEmail).where(OutboxEmail.to_addr == address)
    if since is not None:
        stmt = stmt.where(OutboxEmail.created_at >= since)
    emails = db.session.scalars(stmt.order_by(OutboxEmail.id)).all()
    return [email_state(e) for e in emails]


def email_state(email: OutboxEmail) -> dict[str, Any]:
    text, html = bodies(db.session, email)
    return {
        "id": email.id,
        "to": email.to_addr,
        "subject": email.subject,
        "text": text,
        "links": links_in(text, html),
        "created_at": iso(email.created_at),
        "sent_at": iso(email.sent_at),
    }


def links_in(text: str, html: str) -> list[str]:
    """Every URL of the text and the HTML, once each, in order of appearance."""
    found = LINK.findall(text) + [link.replace("&amp;", "&") for link in LINK.findall(html)]
    return list(dict.fromkeys(found))
