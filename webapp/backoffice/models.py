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

    def set_password(self, password: str) -> None:
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role is StaffRole.AMMINISTRATORE


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
