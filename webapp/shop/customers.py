"""The logged-in customer of a request, read with one Core SELECT (no ORM identity map).

Flask-Login asks for the user on most requests; the views only need the customer's id, name and
tax code, so `current_user` is this small read-only record, not the `Customer` model. The
session's user id is "id:version": a session from before the last "Esci" (which increments the
version, webapp.account.services.end_sessions) has an old version and is logged out, checked
against the database on every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_login import UserMixin
from sqlalchemy import bindparam, select

from webapp.dbtypes import MAX_ID
from webapp.extensions import db
from webapp.shop.models import Customer

_TABLE = Customer.__table__  # Core: no ORM compile or identity map for a read-only row
_BY_ID = select(  # built once: a request only binds the id
    _TABLE.c.id,
    _TABLE.c.name,
    _TABLE.c.email,
    _TABLE.c.tax_code,
    _TABLE.c.session_version,
    _TABLE.c.email_confirmed_at.is_not(None),
).where(_TABLE.c.id == bindparam("id"))


@dataclass(frozen=True, eq=False)
class SessionCustomer(UserMixin):
    """What a request knows of its logged-in customer (a plain row, never flushed)."""

    id: int
    name: str
    email: str
    tax_code: str
    session_version: int
    email_confirmed: bool  # the address was confirmed by its link (needed to confirm orders)

    def get_id(self) -> str:
        """As Customer.get_id: id and session version."""
        return f"{self.id}:{self.session_version}"


def parse_user_id(user_id: str) -> tuple[int, int] | None:
    """(id, version) from Flask-Login's "id:version", or None for anything else."""
    raw_id, _, raw_version = user_id.partition(":")
    if not (raw_id.isascii() and raw_id.isdigit() and raw_version.isascii()):
        return None
    if not raw_version.isdigit() or int(raw_id) > MAX_ID:
        return None
    return int(raw_id), int(raw_version)


def load_session_customer(user_id: str) -> SessionCustomer | None:
    """The customer of a session's user id, or None when unknown or logged out since."""
    parsed = parse_user_id(user_id)
    if parsed is None:
        return None
    row = db.session.execute(_BY_ID, {"id": parsed[0]}).first()
    if row is None or row.session_version != parsed[1]:
        return None
    return SessionCustomer(*row[:5], bool(row[5]))
