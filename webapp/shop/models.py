"""Customers, products and their prices, carts and discount codes (the orders: order_models)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from flask_login import UserMixin
from sqlalchemy import Column, Date, ForeignKey, Integer, String, Table, UniqueConstraint, true
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
