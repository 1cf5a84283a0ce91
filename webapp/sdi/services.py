"""What the intermediary does with a file: receive it, check it, notify, and wait for the PA.

Services flush; the caller (a view, the notifier thread, the CLI) commits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from . import checks, messages
from .extensions import db
from .models import Notification, ReceivedFile, Setting


class EmptyFile(Exception):
    """A file without bytes is refused at once (no IdentificativoSdI)."""


class Unavailable(Exception):
    """The service is down (simulated by the control endpoint)."""


def receive(file_name: str, content: bytes, now: datetime) -> ReceivedFile:
    """Take a file, give it its IdentificativoSdI, check it and queue the first notification."""
    if Setting.get_int("unavailable"):
        raise Unavailable()
    if not content:
        raise EmptyFile()
    sha256 = hashlib.sha256(content).hexdigest()
    received = ReceivedFile(
        file_name=file_name[:200],
        sha256=sha256,
        size=len(content),
        content=content,
        received_at=now,
    )
    db.session.add(received)
    db.session.flush()
    verdict = checks.check(file_name, content, sha256, received.id)
    received.seller, received.year = verdict.seller, verdict.year
    received.number, received.kind = verdict.number, verdict.kind
    received.recipient = (verdict.recipient or "")[:7] or None
    if verdict.errors:
        received.outcome = "NS"
        notify(received, "NS", now, errors=verdict.errors)
    else:
        _deliver(received, now)
    return received


def _deliver(received: ReceivedFile, now: datetime) -> None:
    """RC or MC by recipient code; a public administration's office then answers or not."""
    code = received.recipient or checks.CONSUMER
    public = len(code) == 6
    if code in checks.NOT_DELIVERED:
        received.outcome = "MC"
        notify(received, "MC", now)
        if public:
            received.pending, received.deadline_at = "AT", now + timedelta(days=checks.AT_DAYS)
        return
    received.outcome = "RC"
    notify(received, "RC", now, recipient=code)
    if code == checks.PA_ACCEPTS:
        notify(received, "NE", now, esito="EC01")
    elif code == checks.PA_REFUSES:
        notify(received, "NE", now, esito="EC02")
    elif public:
        received.pending, received.deadline_at = "DT", now + timedelta(days=checks.DT_DAYS)


def notify(received: ReceivedFile, kind: str, now: datetime, **details) -> Notification:
    """Queue one notification (its XML is checked against the schema: never an invalid one)."""
    note = Notification(file=received, kind=kind, xml=b"", created_at=now, next_attempt_at=now)
    db.session.add(note)
    db.session.flush()
    reference = (received.number, received.year) if received.number and received.year else None
    note.xml = messages.build(
        kind,
        sdi_id=received.sdi_id,
        file_name=received.file_name,
        message_id=note.message_id,
        received_at=received.received_at,
        now=now,
        secret=current_app.config["SDI_SHARED_SECRET"],
        file_hash=received.sha256,
        reference=reference or ("0", now.year),
        **details,
    )
    errors = messages.validate(note.xml)
    if errors:  # a bug of the sandbox, never the seller's fault: fail loudly
        raise RuntimeError(f"notification {kind} does not match the schema: {errors}")
    db.session.flush()
    return note


def tick(now: datetime) -> int:
    """The deadlines that passed: DT 15 days after an RC, AT 10 days after an MC (PA only)."""
    due = db.session.scalars(
        select(ReceivedFile).where(
            ReceivedFile.pending.is_not(None), ReceivedFile.deadline_at <= now
        )
    ).all()
    for received in due:
        kind, received.pending = received.pending, None
        notify(received, kind, now, recipient=received.recipient)
    return len(due)


def advance_clock(days: float, now: datetime) -> datetime:
    """Move the sandbox's clock forward (never back) and run the deadlines now due."""
    if days < 0:
        raise ValueError("the clock only moves forward")
    offset = Setting.get_int("clock_offset_seconds") + int(days * 86400)
    Setting.put_int("clock_offset_seconds", offset)
    moved = now + timedelta(days=days)
    tick(moved)
    return moved


def set_available(available: bool) -> None:
    Setting.put_int("unavailable", 0 if available else 1)


def find_by_name(file_name: str) -> ReceivedFile | None:
    """The first file received under this name (later ones were duplicates: 00002)."""
    return db.session.scalar(
        select(ReceivedFile).where(ReceivedFile.file_name == file_name).order_by(ReceivedFile.id)
    )


def feed(since: int, limit: int = 200) -> list[Notification]:
    """The notifications after cursor `since`, oldest first."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.id > since)
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def recent_files(limit: int = 100) -> list[ReceivedFile]:
    return list(
        db.session.scalars(select(ReceivedFile).order_by(ReceivedFile.id.desc()).limit(limit))
    )
