"""One-time links for staff: activation of a new account, a new password, a new authenticator.

An administrator issues them (or `flask staff create|link` for the first administrator); the
link goes by e-mail to the member (the administrator never sees it, nor the password or the
TOTP secret). Only the SHA-256 of the token is stored; a newer link of the same member makes
the older ones useless; completing one is a compare-and-set on `used_at IS NULL` (twice at the
same instant: once), ends every session of the member and lifts a lock.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import pyotp
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp.backoffice.audit import record
from webapp.backoffice.auth import TOTP_STEP, check_new_password, end_sessions
from webapp.backoffice.models import StaffLink, StaffLinkPurpose, StaffUser
from webapp.errors import DomainError, InvalidChoice
from webapp.extensions import db
from webapp.outbox.services import queue_email

MAX_TOKEN = 100


class LinkUnusable(DomainError):
    """The link was used, replaced by a newer one, expired, or never existed."""

    def __init__(self) -> None:
        super().__init__(_("Link già usato o scaduto: chiedi un nuovo link a un amministratore."))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def issue_link(
    member: StaffUser, purpose: StaffLinkPurpose, now: datetime, valid_for: timedelta
) -> str:
    """A new link for `member` (older unused ones die); returns the token, shown nowhere.

    A new authenticator (lost phone) disables the old one at once and ends the member's
    sessions: until the link is used, the account cannot log in.
    """
    db.session.execute(
        update(StaffLink)
        .where(StaffLink.staff_id == member.id, StaffLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    token = secrets.token_urlsafe(32)
    db.session.add(
        StaffLink(
            staff_id=member.id,
            purpose=purpose,
            token_hash=_digest(token),
            totp_secret=pyotp.random_base32() if purpose.sets_totp else None,
            created_at=now,
            expires_at=now + valid_for,
        )
    )
    if purpose is StaffLinkPurpose.TOTP:
        member.totp_confirmed = False
        end_sessions(member.id)
    db.session.flush()
    return token


def send_link(member: StaffUser, purpose: StaffLinkPurpose, url: str, hours: float) -> None:
    """The e-mail that carries the link (through the outbox, after the commit)."""
    subjects = {
        StaffLinkPurpose.ACTIVATION: _("Attiva il tuo account del back office"),
        StaffLinkPurpose.PASSWORD: _("Scegli una nuova password per il back office"),
        StaffLinkPurpose.TOTP: _("Configura di nuovo il codice TOTP del back office"),
    }
    queue_email(
        member.email,
        subjects[purpose],
        "staff_link",
        staff=member,
        purpose=purpose.value,
        url=url,
        hours=int(hours),
        shop_url=current_app.config["SHOP_BASE_URL"],
    )


def find_link(token: str | None, now: datetime) -> StaffLink:
    """The usable link of this token (unused, newest of its member, not expired)."""
    if not token or len(token) > MAX_TOKEN:
        raise LinkUnusable()
    link = db.session.scalar(select(StaffLink).where(StaffLink.token_hash == _digest(token)))
    if link is None or link.used_at is not None or link.expires_at <= now:
        raise LinkUnusable()
    member = db.session.get(StaffUser, link.staff_id)
    if member is None or not member.active:
        raise LinkUnusable()
    return link


def complete_link(link: StaffLink, form, now: datetime, request_id: str) -> StaffUser:
    """Set what the link is for (password, authenticator or both); once. Flushes."""
    member = db.session.get(StaffUser, link.staff_id)
    password = None
    if link.purpose.sets_password:
        password = check_new_password(form.get("password", ""), form.get("password2", ""))
    step = _checked_code(link, form.get("code", ""), now) if link.purpose.sets_totp else None
    used = db.session.execute(
        update(StaffLink)
        .where(StaffLink.id == link.id, StaffLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if used != 1:
        raise LinkUnusable()
    if password is not None:
        member.set_password(password)
    if step is not None:
        member.totp_secret, member.totp_confirmed, member.totp_last_step = (
            link.totp_secret,
            True,
            step,
        )
    member.totp_failures, member.locked_at = 0, None
    end_sessions(member.id)
    record(
        member,
        f"link usato: {link.purpose.value}",
        "staff",
        member.id,
        reason=_("Link monouso completato."),
        request_id=request_id,
    )
    db.session.flush()
    db.session.refresh(member)
    return member


def _checked_code(link: StaffLink, code: str, now: datetime) -> int:
    """The time step of a right code of the link's new secret, else InvalidChoice."""
    code = (code or "")[:20].strip().replace(" ", "")
    totp = pyotp.TOTP(link.totp_secret)
    current = int(now.timestamp()) // TOTP_STEP
    if code.isascii() and code.isdigit() and len(code) == 6:
        for step in (current, current - 1, current + 1):
            if totp.at(step * TOTP_STEP) == code:
                return step
    raise InvalidChoice(_("Codice non valido: controlla l'ora del telefono e riprova."))
