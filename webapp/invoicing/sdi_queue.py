"""What the back office reads about the documents' journey to the SdI: the list by state, a
document's timeline, the "Da correggere" queue (NS with their five-day deadline, the PA's
refusals to settle with a credit note) and what waits for the intermediary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased, selectinload

from webapp.extensions import db
from webapp.invoicing.models import DocumentKind, Invoice, SdiNotification, Transmission
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.transmission import CORRECTION_DAYS, latest_attempt


def list_documents(state: SdiState | None = None, limit: int = 200) -> list[Invoice]:
    """The latest documents, newest first, optionally in one state."""
    query = select(Invoice).order_by(Invoice.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Invoice.sdi_state == state)
    return list(db.session.scalars(query))


def timeline(invoice_id: int) -> list[Transmission]:
    """The document's attempts, oldest first, with their notifications."""
    return list(
        db.session.scalars(
            select(Transmission)
            .where(Transmission.invoice_id == invoice_id)
            .options(selectinload(Transmission.notifications))
            .order_by(Transmission.id)
        )
    )


def notification_of(invoice_id: int, notification_id: int) -> SdiNotification | None:
    note = db.session.get(SdiNotification, notification_id)
    if note is None or note.transmission.invoice_id != invoice_id:
        return None
    return note


def attempt_of(invoice_id: int, attempt_id: int) -> Transmission | None:
    attempt = db.session.get(Transmission, attempt_id)
    return attempt if attempt is not None and attempt.invoice_id == invoice_id else None


@dataclass(frozen=True)
class ToCorrect:
    invoice: Invoice
    attempt: Transmission
    deadline: datetime
    overdue: bool
    duplicate: bool  # an 00404 with no delivered attempt in the shop: check, never resend


def to_correct(now: datetime) -> list[ToCorrect]:
    """Documents rejected (NS): the errors and the deadline to send them again (5 days)."""
    rows = []
    for invoice in list_documents(SdiState.REJECTED, limit=500):
        attempt = latest_attempt(invoice.id)
        if attempt is None:
            continue
        deadline = (attempt.outcome_at or attempt.created_at) + timedelta(days=CORRECTION_DAYS)
        rows.append(
            ToCorrect(invoice, attempt, deadline, deadline < now, "00404" in attempt.error_codes)
        )
    return sorted(rows, key=lambda row: row.deadline)


def refused_tasks() -> list[Invoice]:
    """Invoices a public administration refused (NE EC02) and no credit note settles yet."""
    note = aliased(Invoice)
    credited = exists().where(
        note.related_invoice_id == Invoice.id, note.kind == DocumentKind.CREDIT_NOTE
    )
    return list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.sdi_state == SdiState.REFUSED, ~credited)
            .order_by(Invoice.id)
        )
    )


def waiting() -> list[Transmission]:
    """Attempts the intermediary has not taken yet (down, slow, refusing): what waits."""
    return list(
        db.session.scalars(
            select(Transmission)
            .where(Transmission.state == SdiState.TO_SEND, Transmission.tries > 0)
            .order_by(Transmission.id)
            .limit(500)
        )
    )
