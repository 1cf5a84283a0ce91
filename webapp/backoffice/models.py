"""Staff accounts (not customers) and the append-only audit log of their actions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db


class StaffRole(enum.StrEnum):
    OPERATORE = "operatore"
    AMMINISTRATORE = "amministratore"

    @property
    def label(self) -> str:
        return _("Operatore") if self is StaffRole.OPERATORE else _("Amministratore")


class StaffUser(db.Model):
    """A member of staff: password + TOTP; kept apart from Customer (own session key)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[StaffRole] = mapped_column(enum_column(StaffRole))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret: Mapped[str] = mapped_column(String(64))
    # False until the first code typed after the QR code was shown (then never shown again).
    totp_confirmed: Mapped[bool] = mapped_column(default=False)
    # The last TOTP time step accepted: the same code cannot be used twice.
    totp_last_step: Mapped[int | None] = mapped_column()
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sessions carry it; logout, deactivation and a password or TOTP reset add one, so every
    # session issued before ends (the customers' session_version, for staff).
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    # Wrong TOTP codes since the last right one (UPDATE … + 1); at the lock threshold
    # `locked_at` is set once (compare-and-set) and only a one-time link clears it.
    totp_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def set_password(self, password: str) -> None:
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role is StaffRole.AMMINISTRATORE


class StaffLinkPurpose(enum.StrEnum):
    ACTIVATION = "attivazione"  # a new account: password and authenticator
    PASSWORD = "password"  # nosec B105 # the link's purpose (a forgotten password), no secret
    TOTP = "totp"  # a lost phone: a new authenticator

    @property
    def sets_password(self) -> bool:
        return self is not StaffLinkPurpose.TOTP

    @property
    def sets_totp(self) -> bool:
        return self is not StaffLinkPurpose.PASSWORD


class StaffLink(db.Model):
    """A one-time link an administrator sends to a staff member (never shown to the admin).

    Only the SHA-256 of the token is stored; a newer link of the same member makes the older
    ones useless; `used_at` is set by a compare-and-set UPDATE (a link works once).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    purpose: Mapped[StaffLinkPurpose] = mapped_column(enum_column(StaffLinkPurpose))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The authenticator's new secret (shown only to whoever opens the link).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(db.Model):
    """One staff action: who, when, what, on which object, before/after, and the reason typed.

    Append-only: the back office has no route that edits or deletes a row (a test checks it),
    and nothing in the code updates one.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    staff_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(80))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40))
    before: Mapped[Any | None] = mapped_column(JSON)
    after: Mapped[Any | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(500), default="")
    # The request that wrote it: lets the back office see that each POST left a row.
    request_id: Mapped[str | None] = mapped_column(String(40), index=True)
