"""Invoices and credit notes (FatturaPA documents) and the gap-free counter that numbers them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db


class DocumentKind(enum.StrEnum):
    """FatturaPA TipoDocumento."""

    INVOICE = "TD01"
    CREDIT_NOTE = "TD04"

    @property
    def label(self) -> str:
        return "Fattura" if self is DocumentKind.INVOICE else "Nota di credito"


class InvoiceCounter(db.Model):
    """The last number used in a year: one series for invoices and credit notes.

    Guard: numbers are taken with `UPDATE ... SET last = last + 1 ... RETURNING last` inside the
    paying transaction; the row lock serialises concurrent payers and a rollback gives the
    number back, so the series has no gap and no duplicate (never a database sequence).
    """

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


class Invoice(db.Model):
    """An issued document: never edited. It keeps a copy of the buyer's data and its XML."""

    __table_args__ = (
        UniqueConstraint("year", "number", name="uq_invoice_year_number"),
        # One invoice per paid order (a replayed order_paid finds it).
        Index(
            "uq_invoice_one_per_order",
            "order_id",
            unique=True,
            sqlite_where=text("kind = 'TD01'"),
            postgresql_where=text("kind = 'TD01'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DocumentKind] = mapped_column(enum_column(DocumentKind))
    year: Mapped[int] = mapped_column()
    number: Mapped[int] = mapped_column()
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payment.id"), index=True)
    # A credit note: the refund it documents (one each) and the invoice it corrects.
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id"), unique=True)
    related_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"))
    # The buyer's billing data and the lines as they were at issue time (see services).
    customer: Mapped[dict] = mapped_column(JSON)
    lines: Mapped[list] = mapped_column(JSON)
    net_cents: Mapped[int] = mapped_column()
    vat_cents: Mapped[int] = mapped_column()
    vat_rate_percent: Mapped[int] = mapped_column()
    total_cents: Mapped[int] = mapped_column()  # ImportoTotaleDocumento: net + VAT
    paid_cents: Mapped[int] = mapped_column()  # ImportoPagamento: without VAT if split payment
    split_payment: Mapped[bool] = mapped_column(default=False)
    payment_method: Mapped[str] = mapped_column(String(4))  # MP08 card, MP05 bank transfer
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    file_name: Mapped[str | None] = mapped_column(String(40), unique=True)
    xml: Mapped[bytes | None] = mapped_column(LargeBinary)

    related_invoice: Mapped[Invoice | None] = relationship(remote_side=[id])

    @property
    def number_label(self) -> str:
        """The number printed on the document, e.g. 2026/000123."""
        return f"{self.year}/{self.number:06d}"

    @property
    def is_credit_note(self) -> bool:
        return self.kind is DocumentKind.CREDIT_NOTE
