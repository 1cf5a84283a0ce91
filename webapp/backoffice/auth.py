"""Staff accounts: creation, password + TOTP (pyotp), failed codes, sessions' version.

An account is enrolled (its authenticator configured) only through a one-time link an
administrator sends (webapp.backoffice.links): the password alone never shows a TOTP secret.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import pyotp
import segno
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from webapp.backoffice.audit import record
from webapp.backoffice.models import StaffRole, StaffUser
from webapp.errors import DomainError, InvalidChoice
from webapp.extensions import db
from webapp.outbox.services import queue_email

ISSUER = "PEC Shop Back office"
TOTP_STEP = 30
MIN_PASSWORD = 10
MAX_PASSWORD = 128
MAX_EMAIL = 254


def create_staff(email: str, name: str, role: str, password: str | None = None) -> StaffUser:
    """A new staff account, not enrolled (its authenticator comes with a one-time link);
    without a password, one nobody knows (the activation link sets it). Flushes."""
    email = (email or "").strip().lower()[: MAX_EMAIL + 1]
    try:
        staff_role = StaffRole(role)
    except ValueError:
        raise InvalidChoice(_("Ruolo non valido: operatore o amministratore.")) from None
    if "@" not in email or len(email) > MAX_EMAIL or not (name or "").strip()[:200]:
        raise InvalidChoice(_("Indica nome e indirizzo e-mail."))
    if password is not None:
        check_new_password(password, password)
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise DomainError(_("Esiste già un account staff %(email)s.", email=email))
    staff = StaffUser(
        email=email, name=name.strip()[:200], role=staff_role, totp_secret=pyotp.random_base32()
    )
    staff.set_password(password if password is not None else secrets.token_urlsafe(32))
    db.session.add(staff)
    db.session.flush()
    return staff


def check_new_password(password: str, repeated: str) -> str:
    """A password a staff member may choose (typed twice), else InvalidChoice."""
    if len(password or "") > MAX_PASSWORD:
        raise InvalidChoice(
            _("La password può avere al massimo %(num)d caratteri.", num=MAX_PASSWORD)
        )
    if len(password or "") < MIN_PASSWORD:
        raise InvalidChoice(_("La password deve avere almeno %(num)d caratteri.", num=MIN_PASSWORD))
    if password != repeated:
        raise InvalidChoice(_("Le due password non coincidono."))
    return password


def check_password(email: str, password: str) -> StaffUser | None:
    """The active staff member with this e-mail and password, else None."""
    email, password = (email or "").strip().lower(), password or ""
    if len(email) > MAX_EMAIL or len(password) > MAX_PASSWORD:
        return None  # longer than any account's: refused before hashing
    staff = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
    if staff is None or not staff.active or not staff.check_password(password or ""):
        return None
    return staff


def check_totp(staff: StaffUser, code: str, now: datetime) -> bool:
    """True for a valid code of this or the adjacent time step, each step used at most once.

    The guard: an UPDATE that only moves `totp_last_step` forward, so a code replayed (even by
    two requests at the same instant) is accepted once.
    """
    code = (code or "")[:20].strip().replace(" ", "")
    if not (code.isascii() and code.isdigit()) or len(code) != 6:
        return False
    totp = pyotp.TOTP(staff.totp_secret)
    current = int(now.timestamp()) // TOTP_STEP
    for step in (current, current - 1, current + 1):
        if totp.at(step * TOTP_STEP) == code:
            moved = db.session.execute(
                update(StaffUser)
                .where(
                    StaffUser.id == staff.id,
                    or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
                )
                .values(totp_last_step=step, totp_failures=0, last_login_at=now)
                .execution_options(synchronize_session="fetch")
            ).rowcount
            return moved == 1
    return False


def record_totp_failure(staff: StaffUser, now: datetime, lock_after: int) -> int:
    """Count a wrong code on the account; at `lock_after` lock it, tell its owner, audit.

    The count is `UPDATE … SET totp_failures = totp_failures + 1` (no lost update between
    parallel requests); the lock is a compare-and-set on `locked_at IS NULL`, so the e-mail
    and the audit row are written once however many requests cross the threshold together.
    Returns the account's failures so far.
    """
    db.session.execute(
        update(StaffUser)
        .where(StaffUser.id == staff.id)
        .values(totp_failures=StaffUser.totp_failures + 1)
        .execution_options(synchronize_session=False)
    )
    failures = db.session.scalar(select(StaffUser.totp_failures).where(StaffUser.id == staff.id))
    if failures >= lock_after:
        locked = db.session.execute(
            update(StaffUser)
            .where(StaffUser.id == staff.id, StaffUser.locked_at.is_(None))
            .values(locked_at=now, session_version=StaffUser.session_version + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if locked == 1:
            _tell_locked(staff, failures)
    db.session.refresh(staff)
    return failures


def _tell_locked(staff: StaffUser, failures: int) -> None:
    record(
        staff,
        "account staff bloccato",
        "staff",
        staff.id,
        after={"totp_failures": failures},
        reason=_("Troppi codici TOTP errati."),
    )
    queue_email(
        staff.email,
        _("Il tuo account del back office è stato bloccato"),
        "staff_locked",
        staff=staff,
        failures=failures,
        shop_url=current_app.config["SHOP_BASE_URL"],
    )


def end_sessions(staff_id: int) -> None:
    """Every session of this staff member ends (their next request goes to the login)."""
    db.session.execute(
        update(StaffUser)
        .where(StaffUser.id == staff_id)
        .values(session_version=StaffUser.session_version + 1)
        .execution_options(synchronize_session=False)
    )


def provisioning_uri(staff: StaffUser, secret: str | None = None) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    totp = pyotp.TOTP(secret or staff.totp_secret)
    return totp.provisioning_uri(name=staff.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI (the CSP allows img-src data:)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
