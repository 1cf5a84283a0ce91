"""Invoices and credit notes (FatturaPA documents) and the gap-free counter that numbers them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db
from webapp.invoicing.sdi_states import SdiState


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
    #: Where the document stands with the Sistema di Interscambio (webapp.invoicing.sdi_states):
    #: the latest attempt's state, kept here so that lists (and the QA sandbox) read one column.
    sdi_state: Mapped[SdiState] = mapped_column(
        enum_column(SdiState), default=SdiState.TO_SEND, server_default="da_inviare", index=True
    )

    related_invoice: Mapped[Invoice | None] = relationship(remote_side=[id])

    @property
    def number_label(self) -> str:
        """The number printed on the document, e.g. 2026/000123."""
        return f"{self.year}/{self.number:06d}"

    @property
    def is_credit_note(self) -> bool:
        return self.kind is DocumentKind.CREDIT_NOTE

    @property
    def sdi_label(self) -> str:
        """The document's SdI state in the interface's words ("Consegnata", "Scartata", ...)."""
        return self.sdi_state.label


class Transmission(db.Model):
    """One attempt to deliver a document to the SdI through the intermediary.

    Its file name and exact bytes are fixed when the row is made, before any call: a retry sends
    the same bytes under the same name, and a lost answer is settled by asking the intermediary
    about that name. Guard: the partial unique index `uq_sdi_transmission_in_flight` lets one
    attempt per document be in flight ("Da inviare" or "Inviata") at a time.
    """

    __tablename__ = "sdi_transmission"
    __table_args__ = (
        Index(
            "uq_sdi_transmission_in_flight",
            "invoice_id",
            unique=True,
            sqlite_where=text("state IN ('da_inviare', 'inviata')"),
            postgresql_where=text("state IN ('da_inviare', 'inviata')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    #: IT<seller>_<progressivo>.xml; the progressivo is this row's id in base 36: it never
    #: repeats, across years and across the attempts of one document.
    file_name: Mapped[str] = mapped_column(String(50), unique=True)
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    intermediary: Mapped[str] = mapped_column(String(40))
    sdi_id: Mapped[str | None] = mapped_column(String(12), unique=True)  # IdentificativoSdI
    state: Mapped[SdiState] = mapped_column(enum_column(SdiState), default=SdiState.TO_SEND)
    #: NS: the SdI's errors as [[code, description], ...].
    errors: Mapped[list | None] = mapped_column(JSON)
    #: An 00404 settled against the attempt that was delivered (never resent).
    reconciled: Mapped[bool] = mapped_column(default=False)
    tries: Mapped[int] = mapped_column(default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: A transmitter's claim: while it lasts no other one calls the intermediary for this row.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    invoice: Mapped[Invoice] = relationship()
    notifications: Mapped[list[SdiNotification]] = relationship(
        back_populates="transmission", order_by="SdiNotification.id"
    )

    @property
    def error_codes(self) -> set[str]:
        return {code for code, _ in self.errors or []}


class SdiNotification(db.Model):
    """A notification received for an attempt, by webhook or from the feed, kept as its XML.

    Guard: the unique (sdi_id, message_id): a replayed or re-fetched notification is stored
    once and applied once.
    """

    __tablename__ = "sdi_notification"
    __table_args__ = (UniqueConstraint("sdi_id", "message_id", name="uq_sdi_notification"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transmission_id: Mapped[int] = mapped_column(ForeignKey("sdi_transmission.id"), index=True)
    sdi_id: Mapped[str] = mapped_column(String(12))
    message_id: Mapped[str] = mapped_column(String(14))
    kind: Mapped[str] = mapped_column(String(2))  # RC NS MC NE DT AT
    outcome: Mapped[str | None] = mapped_column(String(4))  # NE: EC01 / EC02
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    transmission: Mapped[Transmission] = relationship(back_populates="notifications")

    @property
    def label(self) -> str:
        return NOTIFICATION_LABELS.get(self.kind, self.kind)


NOTIFICATION_LABELS = {
    "RC": "Ricevuta di consegna",
    "NS": "Notifica di scarto",
    "MC": "Notifica di mancata consegna",
    "NE": "Notifica di esito",
    "DT": "Notifica di decorrenza termini",
    "AT": "Attestazione di avvenuta trasmissione con impossibilità di recapito",
}


class SdiCursor(db.Model):
    """How far the shop has read the intermediary's notification feed."""

    __tablename__ = "sdi_cursor"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
