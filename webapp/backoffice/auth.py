"""Staff accounts: creation, password + TOTP (pyotp), the enrolment QR code (segno, SVG)."""

from __future__ import annotations

from datetime import datetime

import pyotp
import segno
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from webapp.backoffice.models import StaffRole, StaffUser
from webapp.errors import DomainError, InvalidChoice
from webapp.extensions import db

ISSUER = "PEC Shop Back office"
TOTP_STEP = 30
MIN_PASSWORD = 10


def create_staff(email: str, name: str, role: str, password: str) -> StaffUser:
    """A new staff account with a fresh TOTP secret (enrolled at the first login); flushes."""
    email = (email or "").strip().lower()
    try:
        staff_role = StaffRole(role)
    except ValueError:
        raise InvalidChoice(_("Ruolo non valido: operatore o amministratore.")) from None
    if "@" not in email or not (name or "").strip():
        raise InvalidChoice(_("Indica nome e indirizzo e-mail."))
    if len(password or "") < MIN_PASSWORD:
        raise InvalidChoice(_("La password deve avere almeno %(num)d caratteri.", num=MIN_PASSWORD))
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise DomainError(_("Esiste già un account staff %(email)s.", email=email))
    staff = StaffUser(
        email=email, name=name.strip(), role=staff_role, totp_secret=pyotp.random_base32()
    )
    staff.set_password(password)
    db.session.add(staff)
    db.session.flush()
    return staff


def check_password(email: str, password: str) -> StaffUser | None:
    """The active staff member with this e-mail and password, else None."""
    staff = db.session.scalar(
        select(StaffUser).where(StaffUser.email == (email or "").strip().lower())
    )
    if staff is None or not staff.active or not staff.check_password(password or ""):
        return None
    return staff


def check_totp(staff: StaffUser, code: str, now: datetime) -> bool:
    """True for a valid code of this or the adjacent time step, each step used at most once.

    The guard: an UPDATE that only moves `totp_last_step` forward, so a code replayed (even by
    two requests at the same instant) is accepted once.
    """
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
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
                .values(totp_last_step=step, totp_confirmed=True, last_login_at=now)
                .execution_options(synchronize_session="fetch")
            ).rowcount
            return moved == 1
    return False


def provisioning_uri(staff: StaffUser) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(staff.totp_secret).provisioning_uri(name=staff.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI (the CSP allows img-src data:)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
