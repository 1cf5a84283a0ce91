"""A bought service, its renewal settings, and one renewal row per period."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.shop.models import Product
from webapp.shop.order_models import Order


class ServiceStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the order was refunded in full (withdrawal or staff refund)
    CEASED = "ceased"  # "Cessato": the grace window after the expiry ended unrenewed (issue 28)


class Service(db.Model):
    """A service the customer owns until `expires_at`, renewed by card when auto_renew is on."""

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    # The order line that created it (one service per purchased line).
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), unique=True)
    status: Mapped[ServiceStatus] = mapped_column(
        enum_column(ServiceStatus), default=ServiceStatus.ACTIVE
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    auto_renew: Mapped[bool] = mapped_column(default=False)
    frequency_years: Mapped[int] = mapped_column(default=1)
    saved_card_id: Mapped[int | None] = mapped_column(ForeignKey("saved_card.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last renewal notice sent (reminder or new notice): the period, the amount, the years
    # and the card announced. A charge that would differ is announced again first (notices).
    announced_period: Mapped[datetime | None] = mapped_column(UTCDateTime)
    announced_cents: Mapped[int | None] = mapped_column()
    announced_years: Mapped[int | None] = mapped_column()
    announced_card_id: Mapped[int | None] = mapped_column()

    product: Mapped[Product] = relationship(lazy="joined")
    saved_card: Mapped[SavedCard | None] = relationship()

    @property
    def renewable(self) -> bool:
        return self.product.auto_renewable

    @property
    def active(self) -> bool:
        return self.status is ServiceStatus.ACTIVE

    @property
    def renews(self) -> bool:
        """Active, renewable, with auto-renewal on: the engine will charge it."""
        return self.active and self.auto_renew and self.renewable


class RenewalStatus(enum.StrEnum):
    PENDING = "pending"  # due, or a charge under way / with an outcome still to be asked
    SUCCEEDED = "succeeded"  # paid: the service was extended
    FAILED = "failed"  # the last attempt failed; retried at next_attempt_at (if any)
    ABANDONED = "abandoned"  # the service expired unpaid


OPEN_RENEWAL_STATUSES = {RenewalStatus.PENDING, RenewalStatus.FAILED}


class Renewal(db.Model):
    """The renewal of one service for one period (the expiry it renews): at most one per pair.

    The unique key is what makes "never charged twice for the same period" a database rule;
    `claimed_until`/`claimed_by` let one worker at a time work on the row.
    """

    __table_args__ = (
        UniqueConstraint("service_id", "period_expires_at"),
        # What a pass claims: the open renewals in due order, without scanning the closed ones.
        Index(
            "ix_renewal_open_due",
            "next_attempt_at",
            "id",
            sqlite_where=text("status IN ('pending', 'failed')"),
            postgresql_where=text("status IN ('pending', 'failed')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"), index=True)
    period_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[RenewalStatus] = mapped_column(
        enum_column(RenewalStatus), default=RenewalStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    # One renewal order (kind RENEWAL) per renewal; each attempt is a Payment of it.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    # A renewal by hand (issue 28): the paid renewal line of a purchase that took this period.
    manual: Mapped[bool] = mapped_column(default=False, server_default=false())
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_line.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    service: Mapped[Service] = relationship()
    order: Mapped[Order | None] = relationship()

    @property
    def open(self) -> bool:
        return self.status in OPEN_RENEWAL_STATUSES


class ServiceEvent(db.Model):
    """One entry of a service's timeline in the back office: a state change or an e-mail.

    Renewals (automatic and by hand) are read from `renewal` itself; this table adds what has no
    row of its own (issue 28).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    kind: Mapped[str] = mapped_column(String(40))  # state / email / renewal
    detail: Mapped[str] = mapped_column(String(300))
