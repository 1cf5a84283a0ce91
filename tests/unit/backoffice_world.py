"""Factories for the back-office tests: staff, orders paid by card or awaiting a transfer."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyotp
from flask.testing import FlaskClient

from webapp.extensions import db

STAFF_PASSWORD = "password-staff-1"


def make_staff(email: str = "admin@pecshop.test", role: str = "amministratore"):
    from webapp.backoffice.auth import create_staff

    staff = create_staff(email, "Staff Prova", role, STAFF_PASSWORD)
    staff.totp_confirmed = True  # as if enrolled through its link (links have their tests)
    db.session.commit()
    return staff


def staff_session(client: FlaskClient, staff, now: datetime | None = None) -> None:
    """Log staff in by the session keys the back office reads (the login flow has its tests)."""
    from webapp.clock import now_utc

    at = (now or now_utc()).timestamp()
    with client.session_transaction() as session:
        session["staff_id"] = staff.id
        session["staff_version"] = staff.session_version
        session["staff_since"] = at
        session["staff_seen"] = at


def totp_now(staff) -> str:
    return pyotp.TOTP(staff.totp_secret).now()


def make_order(customer, product, method: str = "card", now: datetime | None = None, years=1):
    from webapp.money import vat_cents
    from webapp.shop.models import PaymentMethod
    from webapp.shop.order_models import Order, OrderLine

    net = product.yearly_price_cents * years
    order = Order(
        customer_id=customer.id,
        payment_method=PaymentMethod(method),
        subtotal_cents=net,
        net_cents=net,
        vat_cents=vat_cents(net),
        total_cents=net + vat_cents(net),
        created_at=now,
    )
    order.lines.append(
        OrderLine(
            product_id=product.id,
            product_name=product.name,
            kind=product.kind,
            years=years,
            yearly_price_cents=product.yearly_price_cents,
            list_cents=net,
            net_cents=net,
            auto_renew=method == "card" and product.auto_renewable,
        )
    )
    db.session.add(order)
    db.session.flush()
    return order


def paid_by_card(customer, product, now: datetime, last4: str = "4242"):
    """An order paid on the bank's page with a saved card: services started, e-mail queued."""
    from webapp.payments.models import Payment, PaymentChannel, SavedCard
    from webapp.payments.settlement import succeed_payment

    order = make_order(customer, product, "card", now)
    card = SavedCard(
        customer_id=customer.id,
        gateway_token=f"tok_{order.id}",
        brand="visa",
        last4=last4,
        exp_month=12,
        exp_year=now.year + 3,
        holder=customer.name,
    )
    db.session.add(card)
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.HOSTED_PAGE,
        amount_cents=order.total_cents,
        idempotency_key=f"hosted-{order.id}",
        gateway_ref=f"pay_{order.id}",
        created_at=now - timedelta(minutes=5),
    )
    db.session.add(payment)
    db.session.flush()
    succeed_payment(payment, card, now)
    db.session.commit()
    return order, payment, card
