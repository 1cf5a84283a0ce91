"""One-time links e-mailed to a customer: password reset, address confirmation, new address.

Only the SHA-256 of a link's token is stored, so a copy of the database opens no account. A
token is spent once (compare-and-set on `spent_at`), dies at `expires_at`, and a newer link of
the same purpose spends the older ones ("superseded"). Guard against twins: the partial unique
index `uq_account_token_live` allows one live token per (customer, purpose); of two requests at
once, the second's INSERT fails and it issues nothing.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db


class TokenPurpose(enum.StrEnum):
    RESET = "reset"  # Password dimenticata?
    CONFIRM = "confirm"  # the address given at registration
    EMAIL_CHANGE = "email_change"  # a new address asked in Area clienti › Profilo


LIFETIMES = {
    TokenPurpose.RESET: timedelta(minutes=60),
    TokenPurpose.CONFIRM: timedelta(hours=48),
    TokenPurpose.EMAIL_CHANGE: timedelta(hours=48),
}
#: A token as the links carry it: secrets.token_urlsafe(32) is 43 such characters.
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


class AccountToken(db.Model):
    """A link e-mailed to a customer, by the hash of its token."""

    __tablename__ = "account_token"
    __table_args__ = (
        Index(
            "uq_account_token_live",
            "customer_id",
            "purpose",
            unique=True,
            sqlite_where=text("spent_at IS NULL"),
            postgresql_where=text("spent_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(enum_column(TokenPurpose))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    new_email: Mapped[str | None] = mapped_column(String(254))  # EMAIL_CHANGE only
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    spent_how: Mapped[str | None] = mapped_column(String(16))  # used, superseded, revoked


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def issue(
    customer_id: int,
    purpose: TokenPurpose,
    now: datetime,
    new_email: str | None = None,
    min_interval: timedelta | None = None,
) -> tuple[AccountToken, str] | None:
    """A new link (row, raw token), spending the older live ones; None when none is issued.

    None: a live link of this purpose is younger than `min_interval` (a double click), or a
    twin request issued one at the same instant (the live index refused ours).
    """
    if min_interval is not None:
        recent = db.session.scalar(
            select(AccountToken.id).where(
                AccountToken.customer_id == customer_id,
                AccountToken.purpose == purpose,
                AccountToken.spent_at.is_(None),
                AccountToken.created_at > now - min_interval,
            )
        )
        if recent is not None:
            return None
    # Only links older than the interval are superseded: a twin's link committed since the
    # SELECT above stays live, and our INSERT then meets it in the live index.
    older_than = now - min_interval if min_interval is not None else None
    revoke(customer_id, now, purpose, how="superseded", older_than=older_than)
    raw = secrets.token_urlsafe(32)
    token = AccountToken(
        customer_id=customer_id,
        purpose=purpose,
        token_hash=hash_token(raw),
        new_email=new_email,
        created_at=now,
        expires_at=now + LIFETIMES[purpose],
    )
    try:
        with db.session.begin_nested():
            db.session.add(token)
    except IntegrityError:
        return None
    return token, raw


def lookup(raw: str | None, purposes: set[TokenPurpose]) -> AccountToken | None:
    """The token row of a link (spent or not), or None for anything else."""
    if not raw or not TOKEN_SHAPE.match(raw):
        return None
    token = db.session.scalar(
        select(AccountToken).where(AccountToken.token_hash == hash_token(raw))
    )
    return token if token is not None and token.purpose in purposes else None


def is_live(token: AccountToken | None, now: datetime) -> bool:
    return token is not None and token.spent_at is None and token.expires_at > now


def spend(token: AccountToken, now: datetime) -> bool:
    """Use the link once. Guard: compare-and-set on `spent_at IS NULL` and not expired."""
    won = db.session.execute(
        update(AccountToken)
        .where(
            AccountToken.id == token.id,
            AccountToken.spent_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(spent_at=now, spent_how="used")
        .execution_options(synchronize_session=False)
    ).rowcount
    if won == 1:
        db.session.refresh(token)
    return won == 1


def revoke(
    customer_id: int,
    now: datetime,
    purpose: TokenPurpose | None = None,
    how: str = "revoked",
    older_than: datetime | None = None,
) -> None:
    """Spend the customer's live links (of one purpose, or all; made before `older_than`)."""
    stmt = update(AccountToken).where(
        AccountToken.customer_id == customer_id, AccountToken.spent_at.is_(None)
    )
    if purpose is not None:
        stmt = stmt.where(AccountToken.purpose == purpose)
    if older_than is not None:
        stmt = stmt.where(AccountToken.created_at <= older_than)
    db.session.execute(
        stmt.values(spent_at=now, spent_how=how).execution_options(synchronize_session=False)
    )
