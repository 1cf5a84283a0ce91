"""Customers, products, carts, discount codes and orders."""

from __future__ import annotations

import enum
from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Column,
    Date,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.clock import add_years, now_utc
from webapp.dbtypes import UTCDateTime, enum_column
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l


class Customer(UserMixin, db.Model):
    """A person or company that buys services; e-mail is the login."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tax_code: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Part of the session's user id: "Esci" increments it, so a copied session or remember-me
    # cookie no longer opens the account (webapp.account.services.end_sessions).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Set when the customer followed the confirmation link (webapp.shop.accounts): an order
    # can be confirmed only then. Closed accounts keep their row, anonymised (closed_at).
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and the remember-me cookie: id and version."""
        return f"{self.id}:{self.session_version}"

    def set_password(self, password: str) -> None:
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class ServiceKind(enum.StrEnum):
    """The six certified services of the catalogue."""

    PEC = "pec"
    SPID = "spid"
    CONSERVAZIONE = "conservazione"
    FATTURAZIONE_PA = "fatturazione_pa"
    FIRMA_DIGITALE = "firma_digitale"
    MARCA_TEMPORALE = "marca_temporale"

    @property
    def label(self) -> str:
        return str(_LABELS[self])

    @property
    def auto_renewable(self) -> bool:
        """Only PEC, SPID, Conservazione and Fatturazione PA renew by card automatically."""
        return self not in {ServiceKind.FIRMA_DIGITALE, ServiceKind.MARCA_TEMPORALE}


_LABELS = {
    ServiceKind.PEC: "PEC",
    ServiceKind.SPID: "SPID",
    ServiceKind.CONSERVAZIONE: _l("Conservazione"),
    ServiceKind.FATTURAZIONE_PA: _l("Fatturazione PA"),
    ServiceKind.FIRMA_DIGITALE: _l("Firma Digitale"),
    ServiceKind.MARCA_TEMPORALE: _l("Marca Temporale"),
}

MAX_YEARS = 5
MAX_YEARS_PROMO = 2

#: The life after expiry of a new product, by service (README, "The life of a service after its
#: expiry"); the back office edits each product's own values.
LIFE_DEFAULTS: dict[ServiceKind, dict] = {
    ServiceKind.PEC: {"grace_days": 90},
    ServiceKind.CONSERVAZIONE: {"grace_days": 90},
    ServiceKind.SPID: {"grace_days": 30},
    ServiceKind.FATTURAZIONE_PA: {"grace_days": 30},
    ServiceKind.FIRMA_DIGITALE: {"renew_before_days": 90, "grace_days": 0},
    ServiceKind.MARCA_TEMPORALE: {"renewable_by_hand": False, "grace_days": 0},
}


class Product(db.Model):
    """A sellable product; the price is per year, in cents, net of VAT."""

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[ServiceKind] = mapped_column(enum_column(ServiceKind))
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(500), default="")
    yearly_price_cents: Mapped[int] = mapped_column(Integer)
    promotional: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    # The life after expiry (issue 28; defaults per service in the README, editable in the back
    # office). Renewal by hand: allowed at all (a Marca Temporale is consumed, not renewed), from
    # how many days before the expiry (None: any time; Firma Digitale 90), and for how many days
    # after it (the grace window, "Scaduto": PEC and Conservazione 90; then "Cessato").
    renewable_by_hand: Mapped[bool] = mapped_column(default=True, server_default=true())
    renew_before_days: Mapped[int | None] = mapped_column()
    grace_days: Mapped[int] = mapped_column(default=0, server_default="0")

    def __init__(self, **kwargs) -> None:
        for name, value in LIFE_DEFAULTS.get(kwargs.get("kind"), {}).items():
            kwargs.setdefault(name, value)
        super().__init__(**kwargs)

    @property
    def auto_renewable(self) -> bool:
        return self.kind.auto_renewable

    @property
    def allowed_years(self) -> list[int]:
        """Frequenza di rinnovo: 1-5 years, 1-2 for a promotional product, 1 if not renewable."""
        if not self.auto_renewable:
            return [1]
        return list(range(1, (MAX_YEARS_PROMO if self.promotional else MAX_YEARS) + 1))


class ProductPrice(db.Model):
    """A yearly price valid from a day on (until the next one): see shop.catalogue.price_on.

    Without any row the product's own `yearly_price_cents` applies. Orders keep the amounts they
    were confirmed with; a renewal takes the price valid on its renewal day.
    """

    __table_args__ = (UniqueConstraint("product_id", "effective_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    yearly_price_cents: Mapped[int] = mapped_column()
    effective_from: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_by: Mapped[str | None] = mapped_column(String(254))


class PaymentMethod(enum.StrEnum):
    CARD = "card"
    BANK_TRANSFER = "bank_transfer"

    @property
    def label(self) -> str:
        return _("Carta di credito") if self is PaymentMethod.CARD else _("Bonifico bancario")


class Cart(db.Model):
    """A customer's (or an anonymous visitor's) cart and the checkout choices made on it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), unique=True)
    anon_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    payment_method: Mapped[PaymentMethod | None] = mapped_column(enum_column(PaymentMethod))
    discount_code_id: Mapped[int | None] = mapped_column(ForeignKey("discount_code.id"))
    # Changes each time the cart becomes an order: a resubmitted confirm form finds its order.
    checkout_token: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

    lines: Mapped[list[CartLine]] = relationship(
        back_populates="cart", cascade="all, delete-orphan", order_by="CartLine.id"
    )
    discount_code: Mapped[DiscountCode | None] = relationship()


class CartLine(db.Model):
    """One product in a cart; each line becomes one service, or renews one (a renewal line)."""

    # One renewal line per service in a cart: a second "Rinnova" changes the same line.
    __table_args__ = (UniqueConstraint("cart_id", "service_id", name="uq_cart_line_service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("cart.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    years: Mapped[int] = mapped_column(default=1)
    # A renewal line (issue 28): the service it renews and the expiry it renews from.
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service.id", use_alter=True, name="fk_cart_line_service_id_service")
    )
    renews_from: Mapped[datetime | None] = mapped_column(UTCDateTime)

    cart: Mapped[Cart] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship(lazy="joined")

    @property
    def renews_to(self) -> datetime | None:
        """The new expiry the renewal line buys (from the current one, whatever the day)."""
        return add_years(self.renews_from, self.years) if self.renews_from else None


class DiscountKind(enum.StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


discount_code_product = Table(
    "discount_code_product",
    db.metadata,
    Column(
        "discount_code_id", ForeignKey("discount_code.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("product_id", ForeignKey("product.id", ondelete="CASCADE"), primary_key=True),
)


class DiscountCode(db.Model):
    """A codice sconto: percent or fixed, a validity window, product restriction and limits."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[DiscountKind] = mapped_column(enum_column(DiscountKind))
    percent: Mapped[int | None] = mapped_column()  # 1..100 for PERCENT
    amount_cents: Mapped[int | None] = mapped_column()  # > 0 for FIXED
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None] = mapped_column()
    max_uses_per_customer: Mapped[int | None] = mapped_column()
    uses: Mapped[int] = mapped_column(default=0)
    public: Mapped[bool] = mapped_column(default=True)

    products: Mapped[list[Product]] = relationship(secondary=discount_code_product)


class CustomerType(enum.StrEnum):
    """Who the invoice is made out to: it decides the data asked and the FatturaPA format."""

    PRIVATE = "private"
    BUSINESS = "business"
    PUBLIC = "public"

    @property
    def split_payment(self) -> bool:
        """Public administrations pay the net only (scissione dei pagamenti)."""
        return self is CustomerType.PUBLIC

    @property
    def label(self) -> str:
        return {
            CustomerType.PRIVATE: _l("Privato"),
            CustomerType.BUSINESS: _l("Azienda o professionista"),
            CustomerType.PUBLIC: _l("Pubblica amministrazione"),
        }[self]


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


class BillingProfile(db.Model):
    """Dati di fatturazione: one per customer, for future documents (an invoice keeps a copy)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), unique=True)
    customer_type: Mapped[CustomerType] = mapped_column(enum_column(CustomerType))
    first_name: Mapped[str | None] = mapped_column(String(60))  # private person
    last_name: Mapped[str | None] = mapped_column(String(60))
    company_name: Mapped[str | None] = mapped_column(String(80))  # denominazione
    tax_code: Mapped[str | None] = mapped_column(String(16))  # codice fiscale
    vat_number: Mapped[str | None] = mapped_column(String(11))  # partita IVA, digits only
    address: Mapped[str] = mapped_column(String(60))  # via e numero civico
    postal_code: Mapped[str] = mapped_column(String(5))  # CAP
    city: Mapped[str] = mapped_column(String(60))  # comune
    province: Mapped[str | None] = mapped_column(String(2))  # sigla, Italy only
    country: Mapped[str] = mapped_column(String(2), default="IT")
    # Codice destinatario (7, business) or codice univoco ufficio IPA (6, public administration).
    sdi_code: Mapped[str | None] = mapped_column(String(7))
    pec: Mapped[str | None] = mapped_column(String(254))
    cig: Mapped[str | None] = mapped_column(String(10))
    cup: Mapped[str | None] = mapped_column(String(15))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

    @property
    def split_payment(self) -> bool:
        return self.customer_type.split_payment

    @property
    def display_name(self) -> str:
        if self.customer_type is CustomerType.PRIVATE:
            return f"{self.first_name} {self.last_name}"
        return self.company_name or ""
