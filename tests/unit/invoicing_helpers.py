"""Factories for the invoicing tests: billing data per customer type, paid orders, refunds."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from lxml import etree

from webapp.extensions import db
from webapp.payments.events import payment_refunded
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from webapp.payments.settlement import succeed_payment
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.billing import BillingData, save_profile

ADDRESS = dict(address="Via Garibaldi 10", postal_code="20121", city="Milano", province="MI")

PROFILES = {
    "private": BillingData(
        customer_type="private",
        first_name="Mario",
        last_name="Rossi",
        tax_code="RSSMRA85T10A562S",
        **ADDRESS,
    ),
    "business_code": BillingData(
        customer_type="business",
        company_name="Rossi Consulting S.r.l.",
        vat_number="IT00743110157",
        sdi_code="m5uxcr1",
        **ADDRESS,
    ),
    "business_pec": BillingData(
        customer_type="business",
        company_name="Studio Bianchi",
        vat_number="01234560157",
        tax_code="RSSMRA85T10A562S",
        pec="Fatture@PEC.Studiobianchi.it",
        **ADDRESS,
    ),
    "public": BillingData(
        customer_type="public",
        company_name="Comune di Esempio",
        tax_code="00743110157",
        sdi_code="uf1234",
        cig="z1a2b3c4d5",
        cup="J12B34000010005",
        address="Piazza del Municipio 1",
        postal_code="00184",
        city="Roma",
        province="rm",
    ),
}

NS = {"p": "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"}


def give_billing(customer, kind: str):
    profile = save_profile(customer.id, PROFILES[kind])
    db.session.commit()
    return profile


def confirmed_order(customer, products, now, skus=("PEC-STD",), years=1, method="card", code=None):
    cart = shop_cart.get_or_create_cart(customer.id, None)
    for sku in skus:
        line = shop_cart.add_product(cart, products[sku].id)
        if years in line.product.allowed_years:
            shop_cart.set_years(cart, line.id, years)
    shop_cart.set_payment_method(cart, method)
    if code is not None:
        cart.discount_code = code
    db.session.flush()
    order = checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now)
    db.session.commit()
    return order


def hosted_payment(order) -> Payment:
    """A hosted-page payment of the order's total, flushed (not yet succeeded)."""
    payment = Payment(
        order_id=order.id,
        order=order,
        channel=PaymentChannel.HOSTED_PAGE,
        amount_cents=order.total_cents,
        idempotency_key=secrets.token_hex(8),
    )
    db.session.add(payment)
    db.session.flush()
    return payment


def pay(order, now: datetime, status_ok: bool = True) -> Payment:
    """Mark the order paid through payments' one paid-order transaction (order_paid fires)."""
    payment = hosted_payment(order)
    succeed_payment(payment, None, now)
    return payment


def refund(payment: Payment, amount_cents: int, now: datetime, kind=RefundKind.OPERATOR):
    """A successful refund, announced as the refunds code will (payment_refunded)."""
    row = Refund(
        payment_id=payment.id,
        payment=payment,
        kind=kind,
        status=RefundStatus.SUCCEEDED,
        amount_cents=amount_cents,
        reason="test",
        idempotency_key=secrets.token_hex(8),
        completed_at=now,
    )
    payment.refunded_cents += amount_cents
    db.session.add(row)
    db.session.flush()
    payment_refunded.send(row, payment=payment, now=now)
    return row


def duplicate_payment(order, now: datetime) -> Payment:
    """A second capture for an already paid order (what payments marks for a refund)."""
    payment = Payment(
        order_id=order.id,
        order=order,
        channel=PaymentChannel.HOSTED_PAGE,
        status=PaymentStatus.DUPLICATE,
        amount_cents=order.total_cents,
        idempotency_key=secrets.token_hex(8),
        completed_at=now,
    )
    db.session.add(payment)
    db.session.flush()
    return payment


def xml_tree(xml: bytes):
    return etree.fromstring(xml)


def text(tree, path: str) -> str | None:
    found = tree.find(path)
    return None if found is None else found.text


def cents(value: str) -> int:
    return int(Decimal(value) * 100)
