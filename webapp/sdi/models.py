"""The mock intermediary's tables: files received, the notifications about them, settings."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, TypeDecorator, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

#: IdentificativoSdI: a 12-digit number at most; ours start here so they look like the real ones.
SDI_ID_BASE = 4_000_000_000


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware datetimes (SQLite would hand back naive ones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ReceivedFile(db.Model):
    """A file the seller sent, with what the checks found and what happens next."""

    __tablename__ = "sdi_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Not unique: a second file with a known name is received, and rejected with 00002.
    file_name: Mapped[str] = mapped_column(String(200), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    # Read from the invoice when it could be parsed (the 00404 check and the outcome need them).
    seller: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    year: Mapped[int | None] = mapped_column(Integer, default=None)
    number: Mapped[str | None] = mapped_column(String(20), default=None)
    kind: Mapped[str | None] = mapped_column(String(4), default=None)
    recipient: Mapped[str | None] = mapped_column(String(7), default=None)
    #: NS (rejected), RC (delivered) or MC (not delivered); None until the checks ran.
    outcome: Mapped[str | None] = mapped_column(String(2), default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: A public administration's silence: DT (after an RC) or AT (after an MC) at `deadline_at`.
    pending: Mapped[str | None] = mapped_column(String(2), default=None)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    notifications: Mapped[list[Notification]] = relationship(
        back_populates="file", order_by="Notification.id"
    )

    @property
    def sdi_id(self) -> str:
        return str(SDI_ID_BASE + self.id)


class Notification(db.Model):
    """One SdI message about a file: its XML, its place in the feed (the id is the cursor) and
    its delivery to the seller's webhook, retried with backoff until it answers 2xx."""

    __tablename__ = "sdi_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("sdi_file.id"), index=True)
    kind: Mapped[str] = mapped_column(String(2))  # RC NS MC NE DT AT
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)

    file: Mapped[ReceivedFile] = relationship(back_populates="notifications")

    @property
    def message_id(self) -> str:
        return str(self.id)


class Setting(db.Model):
    """Small integers the processes share: the clock offset, the simulated outage."""

    __tablename__ = "sdi_setting"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)

    @staticmethod
    def get_int(key: str) -> int:
        return db.session.scalar(select(Setting.value).where(Setting.key == key)) or 0

    @staticmethod
    def put_int(key: str, value: int) -> None:
        row = db.session.get(Setting, key)
        if row is None:
            db.session.add(Setting(key=key, value=value))
        else:
            row.value = value
        db.session.flush()
