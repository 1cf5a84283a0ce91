"""A bought service and its renewal settings."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.shop.models import Product, _enum


class ServiceStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"


class Service(db.Model):
    """A service the customer owns until `expires_at`, renewed by card when auto_renew is on."""

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    # The order line that created it (one service per purchased line).
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), unique=True)
    status: Mapped[ServiceStatus] = mapped_column(_enum(ServiceStatus), default=ServiceStatus.ACTIVE)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    auto_renew: Mapped[bool] = mapped_column(default=False)
    frequency_years: Mapped[int] = mapped_column(default=1)
    saved_card_id: Mapped[int | None] = mapped_column(ForeignKey("saved_card.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    product: Mapped[Product] = relationship(lazy="joined")
    saved_card: Mapped[SavedCard | None] = relationship()

    @property
    def renewable(self) -> bool:
        return self.product.auto_renewable
