"""Queue e-mails in the outbox (inside the caller's transaction) and send them after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from flask import current_app, render_template
from flask_mail import Message
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from webapp.clock import now_utc
from webapp.extensions import db, mail
from webapp.notify.models import OutboxEmail

log = logging.getLogger(__name__)

T = TypeVar("T")

_SESSION_KEY = "outbox_ids"
CLAIM_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600


def queue_email(
    to: str, subject: str, template: str, dedupe_key: str | None = None, **context
) -> OutboxEmail | None:
    """Store an e-mail to send once the transaction commits; a repeated dedupe_key is ignored."""
    if dedupe_key is not None:
        exists = db.session.scalar(
            select(OutboxEmail.id).where(OutboxEmail.dedupe_key == dedupe_key)
        )
        if exists is not None:
            return None
    email = OutboxEmail(
        dedupe_key=dedupe_key,
        to_addr=to,
        subject=subject,
        body_text=render_template(f"email/{template}.txt", **context),
        body_html=render_template(f"email/{template}.html", **context),
    )
    db.session.add(email)
    db.session.flush()
    db.session.info.setdefault(_SESSION_KEY, []).append(email.id)
    return email


def commit() -> None:
    """Commit the request's transaction, then send the e-mails it queued (if configured)."""
    ids = db.session.info.pop(_SESSION_KEY, [])
    db.session.commit()
    if ids and current_app.config["MAIL_SEND_AFTER_COMMIT"]:
        send_outbox(ids=ids)


def rollback() -> None:
    """Roll back and forget the e-mails queued in the rolled-back transaction."""
    db.session.info.pop(_SESSION_KEY, None)
    db.session.rollback()


def once_more_after_conflict(action: Callable[[], T]) -> T:
    """Run `action` (which commits); when a concurrent twin won a unique key first, roll back
    and run it once more: the twin's row is visible then, and the action finds it."""
    try:
        return action()
    except IntegrityError:
        rollback()
        return action()


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def send_outbox(
    now: datetime | None = None, ids: Iterable[int] | None = None, limit: int = 100
) -> int:
    """Send due e-mails, one claimed row at a time; a failure is retried later with backoff."""
    now = now or now_utc()
    stmt = select(OutboxEmail.id).where(
        OutboxEmail.sent_at.is_(None),
        OutboxEmail.next_attempt_at <= now,
        or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now),
    )
    if ids is not None:
        stmt = stmt.where(OutboxEmail.id.in_(list(ids)))
    candidates = db.session.scalars(stmt.order_by(OutboxEmail.id).limit(limit)).all()
    sent = 0
    for email_id in candidates:
        # Claim the row: of two senders, one gets it; a crashed sender's claim runs out.
        claimed = db.session.execute(
            update(OutboxEmail)
            .where(
                OutboxEmail.id == email_id,
                OutboxEmail.sent_at.is_(None),
                or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now),
            )
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if claimed != 1:
            continue
        email = db.session.get(OutboxEmail, email_id)
        message = Message(
            subject=email.subject,
            recipients=[email.to_addr],
            body=email.body_text,
            html=email.body_html,
        )
        # Stable per outbox row: a mail server can spot a resend after a crash.
        message.msgId = f"<outbox-{email.id}.{email.created_at:%Y%m%d%H%M%S}@pecshop.local>"
        try:
            mail.send(message)
        except Exception as exc:  # SMTP down, refused, timeout: keep it for later
            log.warning("e-mail %s not sent: %s", email_id, exc)
            email.attempts += 1
            email.last_error = str(exc)[:500]
            email.next_attempt_at = now + _backoff(email.attempts)
            email.claimed_until = None
        else:
            email.attempts += 1
            email.sent_at = now_utc()
            email.claimed_until = None
            sent += 1
        db.session.commit()
    return sent
