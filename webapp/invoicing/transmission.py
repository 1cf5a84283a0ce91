"""Sending documents to the SdI through the intermediary: one row per attempt. Services flush.

- `open_attempt` fixes an attempt's file name and exact bytes before any call (a retry sends
  the same bytes under the same name); guard: the partial unique index
  `uq_sdi_transmission_in_flight`, one attempt in flight per document.
- `claim` leases a due attempt with a compare-and-set UPDATE: of two transmitters, one calls.
- `deliver` sends it; when an earlier call's answer may have been lost it first asks the
  intermediary about that file name, and sends only when the intermediary knows nothing.
- `resend` ("Reinvia", after an NS): a new attempt, a new file name, the same number.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from webapp.errors import DomainError
from webapp.extensions import db
from webapp.invoicing import fatturapa
from webapp.invoicing.models import Invoice, Transmission
from webapp.invoicing.numbering import progressive
from webapp.invoicing.sdi_gateway import SdiGateway, SdiRefused, SdiUnavailable
from webapp.invoicing.sdi_states import SdiState, advance
from webapp.invoicing.services import (
    customer_snapshot,
    document_of,
    initial_state,
    seller_from_config,
)
from webapp.payments.gateway import find_or_send
from webapp.shop.models import Customer
from webapp.shop.order_models import Order

IN_FLIGHT = (SdiState.TO_SEND, SdiState.SENT)
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)
#: An NS must be corrected and sent again within five days.
CORRECTION_DAYS = 5


def gateway() -> SdiGateway:
    return current_app.extensions["sdi_gateway"]


def sdi_state(invoice_id: int) -> SdiState | None:
    """A document's current state with the SdI (None: no such document)."""
    return db.session.scalar(select(Invoice.sdi_state).where(Invoice.id == invoice_id))


def backoff(tries: int) -> timedelta:
    """After the n-th failed call: 1, 2, 4 ... minutes, at most an hour."""
    return min(timedelta(minutes=2 ** max(tries - 1, 0)), MAX_BACKOFF)


# --- attempts ----------------------------------------------------------------------------------


def open_attempt(invoice: Invoice, now: datetime) -> Transmission | None:
    """A new attempt for the document, its file name and bytes fixed; None when another attempt
    is already in flight (the guard refused it)."""
    try:
        with db.session.begin_nested():
            return _new_attempt(invoice, now)
    except IntegrityError:
        return None


def _new_attempt(invoice: Invoice, now: datetime) -> Transmission:
    attempt = Transmission(
        invoice_id=invoice.id,
        file_name=f"~{uuid.uuid4().hex}",  # until the id gives the progressivo
        xml=b"",
        sha256="",
        intermediary=current_app.config["SDI_INTERMEDIARY"],
        state=SdiState.TO_SEND,
        created_at=now,
        next_try_at=now,
    )
    db.session.add(attempt)
    db.session.flush()
    seller = seller_from_config()
    code = progressive(attempt.id)
    order = db.session.get(Order, invoice.order_id)
    attempt.file_name = fatturapa.file_name(seller, code)
    attempt.xml = fatturapa.build(document_of(invoice, order, code), seller)
    attempt.sha256 = hashlib.sha256(attempt.xml).hexdigest()
    invoice.sdi_state = SdiState.TO_SEND
    db.session.flush()
    return attempt


def prepare_due(now: datetime, limit: int = 200) -> int:
    """Open the first attempt of every document "Da inviare" that has none in flight."""
    in_flight = exists().where(
        Transmission.invoice_id == Invoice.id, Transmission.state.in_(IN_FLIGHT)
    )
    invoices = db.session.scalars(
        select(Invoice)
        .where(Invoice.sdi_state == SdiState.TO_SEND, ~in_flight)
        .order_by(Invoice.id)
        .limit(limit)
    ).all()
    return sum(open_attempt(invoice, now) is not None for invoice in invoices)


def due_attempts(now: datetime, limit: int = 200) -> list[int]:
    return list(
        db.session.scalars(
            select(Transmission.id)
            .where(
                Transmission.state == SdiState.TO_SEND,
                Transmission.next_try_at <= now,
                or_(Transmission.claimed_until.is_(None), Transmission.claimed_until < now),
            )
            .order_by(Transmission.id)
            .limit(limit)
        )
    )


def claim(attempt_id: int, now: datetime) -> Transmission | None:
    """Lease a due attempt. Guard: the compare-and-set UPDATE; of two transmitters one wins."""
    result = db.session.execute(
        update(Transmission)
        .where(
            Transmission.id == attempt_id,
            Transmission.state == SdiState.TO_SEND,
            or_(Transmission.claimed_until.is_(None), Transmission.claimed_until < now),
        )
        .values(claimed_until=now + LEASE, tries=Transmission.tries + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return db.session.get(Transmission, attempt_id, populate_existing=True)


def deliver(attempt: Transmission, now: datetime, sdi: SdiGateway | None = None) -> bool:
    """Call the intermediary for a claimed attempt; True when it holds an IdentificativoSdI."""
    sdi = sdi or gateway()
    try:
        receipt = find_or_send(
            attempt.tries > 1,  # an earlier call may have reached it: ask before sending again
            lambda: sdi.find_file(attempt.file_name),
            lambda: sdi.send_file(attempt.file_name, attempt.xml),
        )
    except (SdiUnavailable, SdiRefused) as exc:
        attempt.last_error = str(exc)[:200]
        attempt.next_try_at = now + backoff(attempt.tries)
        attempt.claimed_until = None
        db.session.flush()
        return False
    record_receipt(attempt, receipt.sdi_id, now)
    return True


def record_receipt(attempt: Transmission, sdi_id: str, now: datetime) -> None:
    """The intermediary took the file: "Inviata" (unless a notification already told more)."""
    values = {"sdi_id": sdi_id, "sent_at": now, "claimed_until": None, "last_error": None}
    if move(attempt, SdiState.SENT, **values):
        sync_invoice(attempt)
    else:
        for key, value in values.items():
            setattr(attempt, key, value if key != "sdi_id" else attempt.sdi_id or value)
        db.session.flush()


def move(attempt: Transmission, learnt: SdiState, **values) -> bool:
    """Apply what was learnt to the attempt, if it moves the story on. Guard: compare-and-set on
    the state read, retried after a concurrent change (a webhook racing the feed)."""
    for _round in range(3):
        new = advance(attempt.state, learnt)
        if new is None:
            return False
        result = db.session.execute(
            update(Transmission)
            .where(Transmission.id == attempt.id, Transmission.state == attempt.state)
            .values(state=new, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            set_committed_value(attempt, "state", new)
            for key, value in values.items():
                set_committed_value(attempt, key, value)
            return True
        db.session.refresh(attempt)
    return False


def sync_invoice(attempt: Transmission) -> None:
    """The document shows its latest attempt's state."""
    invoice = db.session.get(Invoice, attempt.invoice_id)
    latest = db.session.scalar(
        select(Transmission.id)
        .where(Transmission.invoice_id == attempt.invoice_id)
        .order_by(Transmission.id.desc())
        .limit(1)
    )
    if latest == attempt.id:
        invoice.sdi_state = attempt.state
        db.session.flush()


# --- after an NS, and for missing billing data --------------------------------------------------


def resend(invoice_id: int, now: datetime) -> Transmission:
    """ "Reinvia": after the fix, a new attempt with a new file name and the same number."""
    invoice = db.session.get(Invoice, invoice_id)
    latest = latest_attempt(invoice_id)
    if invoice is None or invoice.sdi_state is not SdiState.REJECTED or latest is None:
        raise DomainError(_("Questa fattura non è da reinviare."))
    if latest.reconciled or "00404" in latest.error_codes:
        raise DomainError(_("Fattura già consegnata (scarto 00404): non va reinviata."))
    # The SdI never took this document: its buyer data may still be corrected.
    snapshot = customer_snapshot(db.session.get(Customer, invoice.customer_id))
    if initial_state(snapshot) is not SdiState.TO_SEND:
        raise DomainError(_("Mancano i dati di fatturazione del cliente: non si può reinviare."))
    invoice.customer = snapshot
    attempt = open_attempt(invoice, now)
    if attempt is None:
        raise DomainError(_("Un invio di questa fattura è già in corso."))
    return attempt


def latest_attempt(invoice_id: int) -> Transmission | None:
    return db.session.scalar(
        select(Transmission)
        .where(Transmission.invoice_id == invoice_id)
        .order_by(Transmission.id.desc())
        .limit(1)
    )


def complete_missing_data(customer_id: int) -> int:
    """The customer gave billing data: their "Dati mancanti" documents are rebuilt with the same
    number (allowed: none was ever transmitted) and become "Da inviare"."""
    customer = db.session.get(Customer, customer_id)
    waiting = db.session.scalars(
        select(Invoice).where(
            Invoice.customer_id == customer_id, Invoice.sdi_state == SdiState.MISSING_DATA
        )
    ).all()
    seller = seller_from_config()
    done = 0
    for invoice in waiting:
        snapshot = customer_snapshot(customer)
        if initial_state(snapshot) is not SdiState.TO_SEND:
            continue
        invoice.customer = snapshot
        order = db.session.get(Order, invoice.order_id)
        invoice.xml = fatturapa.build(document_of(invoice, order, progressive(invoice.id)), seller)
        invoice.sdi_state = SdiState.TO_SEND
        done += 1
    db.session.flush()
    return done


def has_missing_data(customer_id: int) -> bool:
    return (
        db.session.scalar(
            select(Invoice.id)
            .where(Invoice.customer_id == customer_id, Invoice.sdi_state == SdiState.MISSING_DATA)
            .limit(1)
        )
        is not None
    )
