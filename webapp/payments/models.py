"""Payments and saved cards (gateway tokens only: the shop never sees a card number)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db
from webapp.shop.order_models import Order


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"  # sent to the bank (hosted page) or charge under way
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"  # 3-D Secure failed, or an error
    UNKNOWN = "unknown"  # the bank did not answer: ask it, never charge again blindly
    # Captured by the bank for an order already paid by another payment: refunded in full.
    DUPLICATE = "duplicate"
    # The bank's answer did not match what was asked (amount, currency, order, merchant, or a
    # state that is not final): nothing is paid, any money taken is refunded at once, and the
    # back office shows it as "Da verificare" with what differed (webapp.payments.verify).
    TO_VERIFY = "to_verify"


FINAL_PAYMENT_STATUSES = {
    PaymentStatus.SUCCEEDED,
    PaymentStatus.DECLINED,
    PaymentStatus.FAILED,
    PaymentStatus.DUPLICATE,
    PaymentStatus.TO_VERIFY,
}
#: The statuses in which the bank holds the payment's money (what a refund may give back).
CAPTURED_STATUSES = {PaymentStatus.SUCCEEDED, PaymentStatus.DUPLICATE}


class PaymentChannel(enum.StrEnum):
    HOSTED_PAGE = "hosted_page"  # paths 1 and 3: the bank's page and 3-D Secure
    SAVED_CARD = "saved_card"  # path 2: customer-initiated charge of a token
    RENEWAL = "renewal"  # merchant-initiated charge of a token
    BANK_TRANSFER = "bank_transfer"  # a bonifico recorded as received by the back office


IN_FLIGHT_CARD_CHARGE = "channel = 'saved_card' AND status IN ('pending', 'unknown')"


class Payment(db.Model):
    """One attempt to pay an order; at most one per order can succeed (a unique index says so)."""

    __table_args__ = (
        Index(
            "uq_payment_one_success_per_order",
            "order_id",
            unique=True,
            sqlite_where=text("status = 'succeeded'"),
            postgresql_where=text("status = 'succeeded'"),
        ),
        # At most one saved-card charge in flight per order: a twin (double click, second tab)
        # cannot record a second one, it joins the one that exists (see begin_saved_card_payment).
        Index(
            "uq_payment_one_card_charge_in_flight",
            "order_id",
            unique=True,
            sqlite_where=text(IN_FLIGHT_CARD_CHARGE),
            postgresql_where=text(IN_FLIGHT_CARD_CHARGE),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    channel: Mapped[PaymentChannel] = mapped_column(enum_column(PaymentChannel))
    status: Mapped[PaymentStatus] = mapped_column(
        enum_column(PaymentStatus), default=PaymentStatus.PENDING
    )
    amount_cents: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    # Sent to the bank: the bank never acts twice on the same key.
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    # The bank's payment id (hosted page) or charge id (token charge).
    gateway_ref: Mapped[str | None] = mapped_column(String(80), unique=True)
    redirect_url: Mapped[str | None] = mapped_column(String(500))
    # Given back or being given back: raised by a compare-and-set that keeps it <= amount_cents.
    refunded_cents: Mapped[int] = mapped_column(default=0, server_default="0")
    saved_card_id: Mapped[int | None] = mapped_column(ForeignKey("saved_card.id"))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    # Bank transfers: the CRO/TRN (unique: the same transfer is never recorded twice), the value
    # date, and the staff member who recorded it.
    transfer_reference: Mapped[str | None] = mapped_column(String(80), unique=True)
    value_date: Mapped[date | None] = mapped_column(Date)
    recorded_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship()
    saved_card: Mapped[SavedCard | None] = relationship()


class SavedCard(db.Model):
    """A card saved on the payment portal: the bank's token and what may be shown."""

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    gateway_token: Mapped[str] = mapped_column(String(80), unique=True)
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column()
    exp_year: Mapped[int] = mapped_column()
    holder: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def is_expired(self, on: date) -> bool:
        """A card is valid through the last day of its expiry month."""
        return (self.exp_year, self.exp_month) < (on.year, on.month)

    @property
    def brand_label(self) -> str:
        return {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express"}.get(
            self.brand, self.brand.title()
        )

    @property
    def masked(self) -> str:
        return f"{self.brand_label} •••• {self.last4}"

    @property
    def expiry_label(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"  # on record, the bank not asked yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the bank refused it: the amount is released for another refund
    UNKNOWN = "unknown"  # the bank did not answer: ask it by idempotency key, never again blindly
    # The bank answered with another amount, currency, payment or merchant: not done, what the
    # bank did give back is what the payment records; "Da verificare" in the back office.
    TO_VERIFY = "to_verify"


class RefundKind(enum.StrEnum):
    DUPLICATE = "duplicate"  # automatic: a second capture for an order already paid
    OPERATOR = "operator"  # decided by staff in the back office
    WITHDRAWAL = "withdrawal"  # the consumer's diritto di recesso
    # automatic: money taken by a charge whose answer did not match (webapp.payments.verify)
    MISMATCH = "mismatch"


class Refund(db.Model):
    """Money given back on a payment; the sum of a payment's refunds never exceeds its amount."""

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payment.id"), index=True)
    kind: Mapped[RefundKind] = mapped_column(enum_column(RefundKind))
    status: Mapped[RefundStatus] = mapped_column(
        enum_column(RefundStatus), default=RefundStatus.PENDING
    )
    amount_cents: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    reason: Mapped[str] = mapped_column(String(300))
    # Sent to the bank; also what makes "one automatic refund per duplicate" a database rule.
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    gateway_ref: Mapped[str | None] = mapped_column(String(80), unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    requested_by: Mapped[str | None] = mapped_column(String(120))  # staff e-mail, or None
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    payment: Mapped[Payment] = relationship()
