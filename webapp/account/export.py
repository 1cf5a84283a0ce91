"""Scarica i miei dati (GDPR art. 15 and 20): a zip of JSON files and the invoices' XML."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import select

from webapp.extensions import db
from webapp.invoicing.models import Invoice
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Payment, SavedCard
from webapp.renewals.models import Service
from webapp.shop.models import BillingProfile, Customer
from webapp.shop.order_models import Order


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _row(obj: Any, *fields: str) -> dict[str, Any]:
    return {f: _plain(getattr(obj, f)) for f in fields}


def _orders(customer_id: int) -> list[Order]:
    return list(
        db.session.scalars(select(Order).where(Order.customer_id == customer_id).order_by(Order.id))
    )


def profile_of(customer: Customer) -> dict[str, Any]:
    return _row(customer, "id", "name", "email", "tax_code", "created_at", "email_confirmed_at")


def consents_of(customer: Customer, orders: list[Order]) -> list[dict[str, Any]]:
    """What the customer agreed to, and when."""
    given = [
        {"consenso": "informativa sulla privacy (registrazione)", "il": _plain(customer.created_at)}
    ]
    for order in orders:
        given.append(
            {
                "consenso": "condizioni generali di contratto",
                "ordine": order.number,
                "il": _plain(order.created_at),
            }
        )
        if order.immediate_start_at is not None:
            given.append(
                {
                    "consenso": order.immediate_start_text,
                    "ordine": order.number,
                    "il": _plain(order.immediate_start_at),
                }
            )
    return given


def payments_of(order_ids: list[int]) -> list[dict[str, Any]]:
    """Payments with the card masked (the shop never had the full number)."""
    payments = db.session.scalars(
        select(Payment).where(Payment.order_id.in_(order_ids)).order_by(Payment.id)
    )
    return [
        {
            **_row(p, "id", "order_id", "channel", "status", "amount_cents", "currency"),
            **_row(p, "refunded_cents", "created_at", "completed_at"),
            "carta": p.saved_card.masked if p.saved_card else None,
        }
        for p in payments
    ]


def _files(customer: Customer) -> dict[str, Any]:
    orders = _orders(customer.id)
    billing = db.session.scalar(
        select(BillingProfile).where(BillingProfile.customer_id == customer.id)
    )
    billing_fields = [c.name for c in BillingProfile.__table__.columns]
    services = db.session.scalars(select(Service).where(Service.customer_id == customer.id))
    cards = db.session.scalars(select(SavedCard).where(SavedCard.customer_id == customer.id))
    emails = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.to_addr == customer.email).order_by(OutboxEmail.id)
    )
    return {
        "profilo.json": profile_of(customer),
        "dati_fatturazione.json": _row(billing, *billing_fields) if billing else None,
        "consensi.json": consents_of(customer, orders),
        "ordini.json": [
            {
                **_row(o, "id", "number", "kind", "status", "payment_method", "discount_code"),
                **_row(o, "net_cents", "vat_cents", "total_cents", "created_at", "paid_at"),
                "righe": [_row(line, "product_name", "years") for line in o.lines],
            }
            for o in orders
        ],
        "pagamenti.json": payments_of([o.id for o in orders]),
        "carte.json": [
            _row(c, "brand", "last4", "exp_month", "exp_year", "holder", "created_at", "removed_at")
            for c in cards
        ],
        "servizi.json": [
            {
                **_row(s, "id", "status", "started_at", "expires_at", "auto_renew"),
                **_row(s, "frequency_years", "cancelled_at"),
                "prodotto": s.product.name,
            }
            for s in services
        ],
        "email.json": [_row(e, "subject", "created_at", "sent_at", "body_text") for e in emails],
    }


def export_zip(customer_id: int) -> bytes:
    """The zip: one JSON file per kind of data, and fatture/<file>.xml for each invoice."""
    customer = db.session.get(Customer, customer_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _files(customer).items():
            text = json.dumps(content, ensure_ascii=False, indent=2, default=_plain)
            archive.writestr(name, text)
        invoices = db.session.scalars(
            select(Invoice).where(Invoice.customer_id == customer_id).order_by(Invoice.id)
        )
        for invoice in invoices:
            if invoice.xml and invoice.file_name:
                archive.writestr(f"fatture/{invoice.file_name}", invoice.xml)
    return buffer.getvalue()
