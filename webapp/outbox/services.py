"""Queue e-mails in the outbox (inside the caller's transaction) and send them after commit."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context, render_template
from flask_mail import Message
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import event, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from webapp.bulk import insert_unnest
from webapp.clock import now_utc
from webapp.extensions import db, mail
from webapp.outbox.models import OutboxEmail

log = logging.getLogger(__name__)

_SESSION_KEY = "outbox_ids"
_BACKGROUND_KEY = "outbox_background_ids"
CLAIM_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600

#: Template name -> a function (session, stored JSON context) -> the template's context.
#: Registered by the package that queues such e-mails (it knows what the ids in the JSON mean).
ContextLoader = Callable[[Session, dict], dict[str, Any]]
_context_loaders: dict[str, ContextLoader] = {}


def register_context_loader(template: str, loader: ContextLoader) -> None:
    """How to rebuild the context of `template` at send time from its stored JSON context."""
    _context_loaders[template] = loader


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


def queue_template_emails(rows: list[dict]) -> list[int]:
    """Queue many e-mails rendered only when sent: one multi-row INSERT, no template rendering.

    Each row: to_addr, subject, template, context (JSON-able: ids, ISO dates), dedupe_key.
    Guard: the unique dedupe_key with ON CONFLICT DO NOTHING (a rerun queues nothing). The
    template's context loader (register_context_loader) rebuilds its context at send time.
    Returns the ids inserted; they are sent after the commit like queue_email's.
    """
    if not rows:
        return []
    now = now_utc()
    if db.session.get_bind().dialect.name == "postgresql":
        # One short statement whatever the number of rows: a column per array.
        inserted = insert_unnest(
            OutboxEmail.__table__,
            dict(
                to_addr=("varchar", [r["to_addr"] for r in rows]),
                subject=("varchar", [r["subject"] for r in rows]),
                template=("varchar", [r["template"] for r in rows]),
                dedupe_key=("varchar", [r.get("dedupe_key") for r in rows]),
                context=("json", [json.dumps(r.get("context") or {}) for r in rows]),
                attempts=("integer", [0] * len(rows)),
                created_at=("timestamptz", [now] * len(rows)),
                next_attempt_at=("timestamptz", [now] * len(rows)),
            ),
            suffix="ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        ids = [row[0] for row in inserted]
    else:
        stmt = (
            sqlite.insert(OutboxEmail.__table__)
            .values([dict(attempts=0, created_at=now, next_attempt_at=now, **r) for r in rows])
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxEmail.__table__.c.id)
        )
        ids = list(db.session.scalars(stmt))
    db.session.info.setdefault(_SESSION_KEY, []).extend(ids)
    return ids


def render_stored(session: Session, email: OutboxEmail) -> None:
    """Render an e-mail queued as template + context (once: the bodies are kept on the row)."""
    if email.body_text is not None or email.template is None:
        return
    email.body_text, email.body_html = bodies(session, email)


def bodies(session: Session, email: OutboxEmail) -> tuple[str, str]:
    """The e-mail's text and HTML: as stored, or rendered now (the row is left as it is)."""
    if email.body_text is not None or email.template is None:
        return email.body_text or "", email.body_html or ""
    loader = _context_loaders.get(email.template)
    context = loader(session, email.context or {}) if loader else dict(email.context or {})
    return (
        render_template(f"email/{email.template}.txt", **context),
        render_template(f"email/{email.template}.html", **context),
    )


def send_in_background(email_id: int) -> None:
    """Send this queued e-mail after the commit from a thread, not before the answer.

    For answers that must take the same time whether an e-mail was queued or not (the
    password reset form says nothing about which addresses have an account).
    """
    if not current_app.config["MAIL_SEND_IN_BACKGROUND"]:
        return  # the tests: sent right after the commit, as every other e-mail
    ids = db.session.info.get(_SESSION_KEY, [])
    if email_id in ids:
        ids.remove(email_id)
    db.session.info.setdefault(_BACKGROUND_KEY, []).append(email_id)


def _send_from_thread(app, ids: list[int]) -> None:
    with app.app_context(), Session(db.engine) as fresh:
        send_outbox(ids=ids, session=fresh)


@event.listens_for(FlaskSession, "after_commit")
def _send_after_commit(session) -> None:
    """Send what the committed transaction queued, whoever committed it (view, engine, CLI)."""
    ids = session.info.pop(_SESSION_KEY, None)
    later = session.info.pop(_BACKGROUND_KEY, None)
    if not (ids or later) or not has_app_context():
        return
    if not current_app.config["MAIL_SEND_AFTER_COMMIT"]:
        return
    if later:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        threading.Thread(target=_send_from_thread, args=(app, later), daemon=True).start()
    if ids:
        # The committed session cannot run SQL inside its own hook: send from a fresh one.
        with Session(db.engine) as fresh:
            send_outbox(ids=ids, session=fresh)


@event.listens_for(FlaskSession, "after_rollback")
def _forget_after_rollback(session) -> None:
    session.info.pop(_SESSION_KEY, None)
    session.info.pop(_BACKGROUND_KEY, None)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def send_outbox(
    now: datetime | None = None,
    ids: Iterable[int] | None = None,
    limit: int = 100,
    session: Session | None = None,
) -> int:
    """Send due e-mails, one claimed row at a time; a failure is retried later with backoff."""
    session = session or db.session
    now = now or now_utc()
    stmt = select(OutboxEmail.id).where(
        OutboxEmail.sent_at.is_(None),
        OutboxEmail.next_attempt_at <= now,
        or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now),
    )
    if ids is not None:
        stmt = stmt.where(OutboxEmail.id.in_(list(ids)))
    candidates = session.scalars(stmt.order_by(OutboxEmail.id).limit(limit)).all()
    return sum(_send_one(session, email_id, now) for email_id in candidates)


def _send_one(session: Session, email_id: int, now: datetime) -> bool:
    # Claim the row: of two senders, one gets it; a crashed sender's claim runs out.
    claimed = session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.id == email_id,
            OutboxEmail.sent_at.is_(None),
            or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now),
        )
        .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if claimed != 1:
        return False
    email = session.get(OutboxEmail, email_id)
    email.attempts += 1
    email.claimed_until = None
    try:
        render_stored(session, email)
        message = Message(
            subject=email.subject,
            recipients=[email.to_addr],
            body=email.body_text,
            html=email.body_html,
        )
        # Stable per outbox row: a mail server can spot a resend after a crash.
        message.msgId = f"<outbox-{email.id}.{email.created_at:%Y%m%d%H%M%S}@pecshop.local>"
        mail.send(message)
    except Exception as exc:  # SMTP down, refused, timeout, a template error: keep it for later
        log.warning("e-mail %s not sent: %s", email_id, exc)
        email.last_error = str(exc)[:500]
        email.next_attempt_at = now + _backoff(email.attempts)
        session.commit()
        return False
    email.sent_at = now_utc()
    session.commit()
    return True
