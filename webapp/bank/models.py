"""The mock bank's tables: hosted payments, saved cards (tokens), charges, refunds, outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


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


class PaymentStatus(StrEnum):
    """Lifecycle of a hosted payment (docs/bank-api.md)."""

    CREATED = "created"
    PENDING_CONFIRMATION = "pending_confirmation"
    CHALLENGE = "challenge"
    AUTHORISED = "authorised"
    DECLINED = "declined"
    FAILED = "failed"
    # The issuer never confirms (the PENDING test card): no money taken, and it stays so.
    PENDING = "pending"

    @property
    def is_final(self) -> bool:
        """Authorised, declined and failed never change again (nor the sandbox's pending)."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {PaymentStatus.AUTHORISED, PaymentStatus.DECLINED, PaymentStatus.FAILED, PaymentStatus.PENDING}
)


class ChargeStatus(StrEnum):
    """Outcome of a charge by token."""

    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    PENDING = "pending"  # the PENDING test card: never confirmed, no money taken


class RefundStatus(StrEnum):
    """Outcome of a refund (a refused refund is answered with an error and never stored)."""

    SUCCEEDED = "succeeded"


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Card(db.Model):
    """A saved card: the token the shop keeps, and the number only the bank keeps."""

    __tablename__ = "bank_card"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    pan: Mapped[str] = mapped_column(String(19))
    brand: Mapped[str] = mapped_column(String(16))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Payment(db.Model):
    """A hosted payment: the card page, 3-D Secure and the signed result."""

    __tablename__ = "bank_payment"
    # The last guard of "never refund more than was captured", under the compare-and-set.
    __table_args__ = (
        CheckConstraint(
            "refunded_cents >= 0 AND refunded_cents <= amount_cents", name="ck_payment_refunded"
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    order_ref: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200))
    return_url: Mapped[str] = mapped_column(String(2000))
    notify_url: Mapped[str | None] = mapped_column(String(2000))
    save_card: Mapped[bool]
    status: Mapped[PaymentStatus] = mapped_column(_enum(PaymentStatus))
    # The entered card, from "Procedi" on (the CVV is checked, never stored).
    holder: Mapped[str | None] = mapped_column(String(100), default=None)
    pan: Mapped[str | None] = mapped_column(String(19), default=None)
    brand: Mapped[str | None] = mapped_column(String(16), default=None)
    exp_month: Mapped[int | None] = mapped_column(Integer, default=None)
    exp_year: Mapped[int | None] = mapped_column(Integer, default=None)
    challenge_method: Mapped[str | None] = mapped_column(String(8), default=None)
    otp_code: Mapped[str | None] = mapped_column(String(6), default=None)
    otp_failures: Mapped[int] = mapped_column(Integer, default=0)
    decline_code: Mapped[str | None] = mapped_column(String(32), default=None)
    decline_message: Mapped[str | None] = mapped_column(String(200), default=None)
    card_token: Mapped[str | None] = mapped_column(ForeignKey("bank_card.token"), default=None)
    #: Sum of the refunds; only refunds.refund changes it, with a compare-and-set UPDATE.
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    card: Mapped[Card | None] = relationship()

    @property
    def last4(self) -> str | None:
        """Last four digits of the entered card."""
        return self.pan[-4:] if self.pan else None


class Charge(db.Model):
    """A charge of a saved card by token (no 3-D Secure), unique per idempotency key."""

    __tablename__ = "bank_charge"
    __table_args__ = (
        CheckConstraint(
            "refunded_cents >= 0 AND refunded_cents <= amount_cents", name="ck_charge_refunded"
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    token: Mapped[str] = mapped_column(ForeignKey("bank_card.token"))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    order_ref: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200))
    initiator: Mapped[str] = mapped_column(String(16))
    status: Mapped[ChargeStatus] = mapped_column(_enum(ChargeStatus))
    decline_code: Mapped[str | None] = mapped_column(String(32))
    decline_message: Mapped[str | None] = mapped_column(String(200))
    #: Sum of the refunds; only refunds.refund changes it, with a compare-and-set UPDATE.
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(db.Model):
    """A refund of a captured hosted payment or token charge, unique per idempotency key."""

    __tablename__ = "bank_refund"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="ck_refund_amount"),
        CheckConstraint("(payment_id IS NULL) <> (charge_id IS NULL)", name="ck_refund_one_target"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("bank_payment.id"), default=None)
    charge_id: Mapped[str | None] = mapped_column(ForeignKey("bank_charge.id"), default=None)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[RefundStatus] = mapped_column(_enum(RefundStatus))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    payment: Mapped[Payment | None] = relationship()
    charge: Mapped[Charge | None] = relationship()

    @property
    def target_id(self) -> str:
        """The refunded payment's or charge's id."""
        return self.payment_id or self.charge_id or ""


class Notification(db.Model):
    """Outbox row: one signed POST to the shop, retried with backoff until it answers 2xx."""

    __tablename__ = "bank_notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("bank_payment.id"))
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
