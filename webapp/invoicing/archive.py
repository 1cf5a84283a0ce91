"""Issued invoices read back: a customer's list, the legal copy (the XML as sent), the
documents of a period and their ZIP export for the accountant."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from webapp.clock import ROME
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.invoicing.models import Invoice, Transmission


def list_invoices(customer_id: int) -> list[Invoice]:
    """The customer's documents, newest first."""
    return list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.customer_id == customer_id)
            .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
        )
    )


def get_invoice(invoice_id: int, customer_id: int) -> Invoice:
    """A document of this customer; another customer's is simply not found."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.customer_id != customer_id:
        raise NotFound("Documento non trovato.")
    return invoice


def legal_copy(invoice: Invoice) -> tuple[str, bytes]:
    """The file name and XML the SdI took for this document (its delivered attempt), or the
    document as issued while none was delivered."""
    delivered = [
        attempt
        for attempt in db.session.scalars(
            select(Transmission)
            .where(Transmission.invoice_id == invoice.id)
            .order_by(Transmission.id.desc())
        )
        if attempt.state.issued
    ]
    if delivered:
        return delivered[0].file_name, delivered[0].xml
    return invoice.file_name, invoice.xml


def documents_between(date_from: date, date_to: date) -> list[Invoice]:
    """Documents issued on these Italian calendar days (both included), in number order."""
    start = datetime.combine(date_from, time.min, ROME)
    end = datetime.combine(date_to + timedelta(days=1), time.min, ROME)
    return list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.issued_at >= start, Invoice.issued_at < end)
            .order_by(Invoice.year, Invoice.number)
        )
    )


def export_zip(date_from: date, date_to: date) -> bytes:
    """A zip of the XML files of the documents issued in the period (for the accountant)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for invoice in documents_between(date_from, date_to):
            name, xml = legal_copy(invoice)
            info = zipfile.ZipInfo(name, date_time=_zip_time(invoice.issued_at))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, xml)
    return buffer.getvalue()


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    local = moment.astimezone(ROME)
    return (local.year, local.month, local.day, local.hour, local.minute, local.second)
