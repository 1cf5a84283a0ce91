"""Orders, their lines and the codici sconto they used: every amount fixed at confirmation."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.clock import now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db
from webapp.shop.models import CustomerType, PaymentMethod, Product, ServiceKind


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    CANCELLED = "cancelled"


# Orders only move forward; a paid order is never paid again (see webapp.statemachine).
ORDER_TRANSITIONS = {
    OrderStatus.PENDING_PAYMENT: {OrderStatus.PAID, OrderStatus.CANCELLED},
}


class OrderKind(enum.StrEnum):
    PURCHASE = "purchase"
    RENEWAL = "renewal"


class Order(db.Model):
    """An order with every amount fixed by the server when it was confirmed."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    kind: Mapped[OrderKind] = mapped_column(enum_column(OrderKind), default=OrderKind.PURCHASE)
    status: Mapped[OrderStatus] = mapped_column(
        enum_column(OrderStatus), default=OrderStatus.PENDING_PAYMENT
    )
    payment_method: Mapped[PaymentMethod] = mapped_column(enum_column(PaymentMethod))
    discount_code: Mapped[str | None] = mapped_column(String(40))
    subtotal_cents: Mapped[int] = mapped_column()
    discount_cents: Mapped[int] = mapped_column(default=0)
    net_cents: Mapped[int] = mapped_column()
    vat_cents: Mapped[int] = mapped_column()
    # What the customer pays: net + VAT, or only the net for a public administration (split
    # payment, art. 17-ter DPR 633/72: the administration pays the VAT to the State itself).
    total_cents: Mapped[int] = mapped_column()
    split_payment: Mapped[bool] = mapped_column(default=False, server_default=false())
    # One buyer per order: the billing data (type included) copied at confirm. Split payment,
    # the invoice, the diritto di recesso and the e-mails read it; a later edit of the billing
    # data changes later orders only. NULL for orders confirmed before the copy existed.
    buyer_type: Mapped[CustomerType | None] = mapped_column(enum_column(CustomerType))
    buyer: Mapped[dict | None] = mapped_column(JSON)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    checkout_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The consumer asked at checkout for the services to start at once and acknowledged losing
    # the diritto di recesso: the exact text shown and when it was ticked.
    immediate_start_text: Mapped[str | None] = mapped_column(String(500))
    immediate_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )

    @property
    def number(self) -> str:
        """The number the customer sees, e.g. 2026-000042."""
        return f"{self.created_at.year}-{self.id:06d}"

    @property
    def has_auto_renew(self) -> bool:
        return any(line.auto_renew for line in self.lines)

    @property
    def buyer_name(self) -> str:
        """Whom the order is invoiced to, as copied at confirm ("" for older orders)."""
        buyer = self.buyer or {}
        if buyer.get("customer_type") == CustomerType.PRIVATE.value:
            return f"{buyer.get('first_name', '')} {buyer.get('last_name', '')}".strip()
        return buyer.get("company_name", "")

    @property
    def document_total_cents(self) -> int:
        """The invoice's total (net + VAT), whoever pays the VAT."""
        return self.net_cents + self.vat_cents


class OrderLine(db.Model):
    """A product bought for a number of years, with its price and discount share."""

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    product_name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[ServiceKind] = mapped_column(enum_column(ServiceKind))
    years: Mapped[int] = mapped_column()
    yearly_price_cents: Mapped[int] = mapped_column()
    list_cents: Mapped[int] = mapped_column()
    discount_cents: Mapped[int] = mapped_column(default=0)
    net_cents: Mapped[int] = mapped_column()
    auto_renew: Mapped[bool] = mapped_column(default=False)
    # For a renewal order, or a renewal line of a purchase (issue 28): the service it renews.
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service.id", use_alter=True, name="fk_order_line_service_id_service")
    )
    # The period a renewal line buys: from the renewed expiry to the new one (the invoice line's
    # DataInizioPeriodo/DataFinePeriodo, the order page's "dal … al …").
    renews_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renews_to: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


class DiscountRedemption(db.Model):
    """One use of a discount code by an order (counts towards the per-customer limit).

    A code limited per customer numbers each customer's uses 1..limit in `slot`: two orders
    confirmed at once take the same slot, and the unique key lets only one of them in.
    """

    __table_args__ = (
        UniqueConstraint("order_id"),
        UniqueConstraint("discount_code_id", "customer_id", "slot", name="uq_redemption_slot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    discount_code_id: Mapped[int] = mapped_column(ForeignKey("discount_code.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    # The customer's n-th use of a code limited per customer; NULL (no limit) never clashes.
    slot: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
