"""The SdI's notifications, by webhook or from the intermediary's feed: parse, store, apply.

Either channel, or both at once: a notification is stored once (guard: the unique
(sdi_id, message_id) of `sdi_notification`) and moves its attempt only forward
(sdi_states.advance), so a replay, a late or out-of-order one, or one for an unknown file
changes nothing. Services flush; the caller commits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from lxml import etree
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.invoicing.models import Invoice, SdiCursor, SdiNotification, Transmission
from webapp.invoicing.sdi_gateway import SdiGateway
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.services import display_name
from webapp.invoicing.transmission import gateway, move, sync_invoice
from webapp.outbox.services import queue_email

log = logging.getLogger(__name__)

NS = "http://www.fatturapa.gov.it/sdi/messaggi/v1.0"
KINDS = {
    "RicevutaConsegna": "RC",
    "NotificaScarto": "NS",
    "NotificaMancataConsegna": "MC",
    "NotificaEsito": "NE",
    "AttestazioneTrasmissioneFattura": "AT",
    "NotificaDecorrenzaTermini": "DT",
}
STATES = {
    "RC": SdiState.DELIVERED,
    "MC": SdiState.NOT_DELIVERED,
    "NS": SdiState.REJECTED,
    "DT": SdiState.EXPIRED,
    "AT": SdiState.UNDELIVERABLE,
    "EC01": SdiState.ACCEPTED,
    "EC02": SdiState.REFUSED,
}
MAX_BYTES = 1_000_000
_SDI_ID = re.compile(r"[0-9]{1,12}")


class BadNotification(Exception):
    """Not an SdI notification this shop can read."""


@dataclass
class Parsed:
    kind: str
    sdi_id: str
    file_name: str
    message_id: str
    outcome: str | None = None
    errors: list[list[str]] = field(default_factory=list)

    @property
    def state(self) -> SdiState:
        return STATES[self.outcome if self.kind == "NE" else self.kind]


def parse(xml: bytes) -> Parsed:
    """Read a notification's XML; BadNotification when it is not one."""
    if not xml or len(xml) > MAX_BYTES:
        raise BadNotification("empty or too large")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    try:
        root = etree.fromstring(xml, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise BadNotification("not XML") from exc
    local = etree.QName(root).localname if isinstance(root.tag, str) else ""
    if etree.QName(root).namespace != NS or local not in KINDS:
        raise BadNotification("not an SdI notification")

    def text(path: str) -> str:
        found = root.find(path)
        return (found.text or "").strip() if found is not None else ""

    parsed = Parsed(
        kind=KINDS[local],
        sdi_id=text("IdentificativoSdI"),
        file_name=text("NomeFile"),
        message_id=text("MessageId"),
    )
    if parsed.kind == "NE":
        parsed.outcome = text("EsitoCommittente/Esito")
    parsed.errors = [
        [text_of(e, "Codice"), text_of(e, "Descrizione")]
        for e in root.findall("ListaErrori/Errore")
    ]
    if (
        not _SDI_ID.fullmatch(parsed.sdi_id)
        or not 1 <= len(parsed.message_id) <= 14
        or not 1 <= len(parsed.file_name) <= 50
        or (parsed.kind == "NE" and parsed.outcome not in ("EC01", "EC02"))
        or (parsed.kind == "NS" and not parsed.errors)
    ):
        raise BadNotification("missing or malformed fields")
    return parsed


def text_of(element, tag: str) -> str:
    found = element.find(tag)
    return (found.text or "").strip()[:255] if found is not None else ""


def receive(xml: bytes, now: datetime) -> str:
    """Store and apply one notification: "applicata", "duplicata" or "sconosciuta"."""
    parsed = parse(xml)
    attempt = _attempt_for(parsed)
    if attempt is None:
        log.info("SdI notification %s for unknown file %s", parsed.kind, parsed.file_name)
        return "sconosciuta"
    try:
        with db.session.begin_nested():
            db.session.add(
                SdiNotification(
                    transmission_id=attempt.id,
                    sdi_id=parsed.sdi_id,
                    message_id=parsed.message_id,
                    kind=parsed.kind,
                    outcome=parsed.outcome,
                    xml=xml,
                    received_at=now,
                )
            )
    except IntegrityError:
        return "duplicata"
    apply(attempt, parsed, now)
    return "applicata"


def _attempt_for(parsed: Parsed) -> Transmission | None:
    """The attempt by IdentificativoSdI; or by file name when the send's answer is not recorded
    yet (a fast webhook) or was lost: that settles the lost answer too."""
    attempt = db.session.scalar(select(Transmission).where(Transmission.sdi_id == parsed.sdi_id))
    if attempt is not None:
        return attempt
    if any(code == "00002" for code, _ in parsed.errors):
        return None  # another file under this name (a duplicate), not our attempt
    claimed = db.session.execute(
        update(Transmission)
        .where(Transmission.file_name == parsed.file_name, Transmission.sdi_id.is_(None))
        .values(sdi_id=parsed.sdi_id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    return db.session.scalar(
        select(Transmission)
        .where(Transmission.sdi_id == parsed.sdi_id)
        .execution_options(populate_existing=True)
    )


def apply(attempt: Transmission, parsed: Parsed, now: datetime) -> None:
    """Move the attempt and its document on; MC: the courtesy copy; 00404: reconciled."""
    values: dict = {"outcome_at": now, "claimed_until": None}
    if parsed.kind == "NS":
        values["errors"] = parsed.errors
    if not move(attempt, parsed.state, **values):
        return
    if parsed.kind == "NS" and any(code == "00404" for code, _ in parsed.errors):
        reconcile_duplicate(attempt)
        return
    sync_invoice(attempt)
    if parsed.kind == "MC":
        _courtesy_copy(db.session.get(Invoice, attempt.invoice_id))


def reconcile_duplicate(attempt: Transmission) -> None:
    """00404: the SdI already has this number: never resent, the document shows the attempt
    that was delivered (when the shop has none, it stays "Scartata" for an operator)."""
    attempt.reconciled = True
    delivered = [
        other
        for other in db.session.scalars(
            select(Transmission)
            .where(Transmission.invoice_id == attempt.invoice_id, Transmission.id != attempt.id)
            .order_by(Transmission.id.desc())
        )
        if other.state.issued
    ]
    invoice = db.session.get(Invoice, attempt.invoice_id)
    invoice.sdi_state = delivered[0].state if delivered else SdiState.REJECTED
    db.session.flush()


def _courtesy_copy(invoice: Invoice) -> None:
    """MC for a consumer or a business: tell the buyer where the original is, once."""
    buyer = invoice.customer
    if buyer.get("customer_type") == "public" or not buyer.get("email"):
        return  # a PA gets its AT through the SdI
    queue_email(
        buyer["email"],
        f"{invoice.kind.label} n. {invoice.number_label}: copia di cortesia",
        "invoice_courtesy",
        dedupe_key=f"sdi-courtesy-{invoice.id}",
        invoice=invoice,
        buyer_name=display_name(buyer),
        shop_url=current_app.config["SHOP_BASE_URL"],
    )


def _cursor() -> SdiCursor:
    """The feed's cursor row. Guard: INSERT ... ON CONFLICT DO NOTHING, so two first passes
    at once both find the one row."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(SdiCursor)
        .values(name="feed", position=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return db.session.get(SdiCursor, "feed")


def fetch_feed(now: datetime, sdi: SdiGateway | None = None, pages: int = 10) -> int:
    """Read the intermediary's feed from the stored cursor; returns how many were applied."""
    sdi = sdi or gateway()
    cursor = _cursor()
    applied = 0
    for _ in range(pages):
        items = sdi.notifications(cursor.position)
        if not items:
            break
        for item in items:
            try:
                applied += receive(item.xml, now) == "applicata"
            except BadNotification:
                log.warning("unreadable SdI notification at cursor %s", item.cursor)
            cursor.position = max(cursor.position, item.cursor)
        db.session.flush()
    return applied
