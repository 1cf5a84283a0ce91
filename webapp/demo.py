"""Demo data: the six services, a promotional PEC, discount codes and a demo customer."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from webapp.clock import now_utc
from webapp.extensions import db
from webapp.shop.models import (
    BillingProfile,
    Customer,
    CustomerType,
    DiscountCode,
    DiscountKind,
    Product,
    ServiceKind,
)

DEMO_EMAIL = "demo@pecshop.test"
DEMO_PASSWORD = "demo12345"  # nosec B105 # demo data: seed-demo refuses outside development
DEMO_TAX_CODE = "RSSMRA85T10A562S"

PRODUCTS = [
    ("PEC-STD", ServiceKind.PEC, "PEC Standard", "Casella PEC da 1 GB.", 500, False),
    ("PEC-PRO", ServiceKind.PEC, "PEC Pro", "Casella PEC da 2 GB con notifiche SMS.", 2500, False),
    (
        "PEC-PROMO",
        ServiceKind.PEC,
        "PEC Standard in promozione",
        "Casella PEC da 1 GB a metà prezzo: 1 o 2 anni.",
        250,
        True,
    ),
    (
        "SPID-PF",
        ServiceKind.SPID,
        "SPID Persona Fisica",
        "Identità digitale SPID livello 2.",
        990,
        False,
    ),
    (
        "CONS-1",
        ServiceKind.CONSERVAZIONE,
        "Conservazione digitale 1 GB",
        "Conservazione a norma dei documenti informatici.",
        5000,
        False,
    ),
    (
        "FPA-100",
        ServiceKind.FATTURAZIONE_PA,
        "Fatturazione PA",
        "Fatture elettroniche verso la Pubblica Amministrazione.",
        2500,
        False,
    ),
    (
        "FIRMA-R",
        ServiceKind.FIRMA_DIGITALE,
        "Firma Digitale Remota",
        "Certificato di firma digitale remota.",
        3990,
        False,
    ),
    (
        "MARCHE-50",
        ServiceKind.MARCA_TEMPORALE,
        "Marche temporali (50)",
        "Pacchetto di 50 marche temporali.",
        1500,
        False,
    ),
]


def seed(now: datetime) -> Customer:
    """Create what is missing, change nothing that exists: safe to run at every start."""
    products = _seed_products()
    _seed_codes(now, products)
    return _seed_customer()


def _seed_products() -> dict[str, Product]:
    products = {}
    for sku, kind, name, description, price, promo in PRODUCTS:
        product = db.session.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            product = Product(
                sku=sku,
                kind=kind,
                name=name,
                description=description,
                yearly_price_cents=price,
                promotional=promo,
            )
            db.session.add(product)
        products[sku] = product
    db.session.flush()
    return products


def _seed_codes(now: datetime, products: dict[str, Product]) -> None:
    for fields in _codes(now, products):
        if db.session.scalar(select(DiscountCode.id).where(DiscountCode.code == fields["code"])):
            continue
        db.session.add(DiscountCode(**fields))


def _codes(now: datetime, products: dict[str, Product]) -> list[dict]:
    """One code for each case: first order, some products only, expired, not yet valid."""
    year = timedelta(days=365)
    return [
        dict(
            code="BENVENUTO10",
            description="10% di sconto sul primo ordine",
            kind=DiscountKind.PERCENT,
            percent=10,
            valid_from=now - year,
            valid_until=now + year,
            max_uses_per_customer=1,
        ),
        dict(
            code="PEC5",
            description="€ 5,00 di sconto sulle caselle PEC",
            kind=DiscountKind.FIXED,
            amount_cents=500,
            valid_from=now - year,
            valid_until=now + year,
            products=[products["PEC-STD"], products["PEC-PRO"]],
        ),
        dict(
            code="ESTATE2025",
            description="Promozione estiva 2025",
            kind=DiscountKind.PERCENT,
            percent=20,
            valid_from=now - 2 * year,
            valid_until=now - year / 2,
        ),
        dict(
            code="NATALE",
            description="Sconto di Natale",
            kind=DiscountKind.PERCENT,
            percent=15,
            valid_from=now + year / 4,
            valid_until=now + year / 2,
        ),
    ]


def _seed_customer() -> Customer:
    """The demo customer, with a billing profile so that checkout can go straight on."""
    customer = db.session.scalar(select(Customer).where(Customer.email == DEMO_EMAIL))
    if customer is None:
        customer = Customer(email=DEMO_EMAIL, name="Mario Rossi", tax_code=DEMO_TAX_CODE)
        customer.set_password(DEMO_PASSWORD)
        db.session.add(customer)
    if customer.email_confirmed_at is None:  # the demo account's address is confirmed
        customer.email_confirmed_at = customer.created_at or now_utc()
    db.session.flush()
    if db.session.scalar(
        select(BillingProfile.id).where(BillingProfile.customer_id == customer.id)
    ):
        return customer
    db.session.add(
        BillingProfile(
            customer_id=customer.id,
            customer_type=CustomerType.PRIVATE,
            first_name="Mario",
            last_name="Rossi",
            tax_code=DEMO_TAX_CODE,
            address="Via Garibaldi 10",
            postal_code="20121",
            city="Milano",
            province="MI",
            country="IT",
        )
    )
    db.session.flush()
    return customer
