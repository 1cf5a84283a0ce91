"""Accounts: registration and authentication."""

from __future__ import annotations

from sqlalchemy import select

from webapp.errors import DomainError
from webapp.extensions import db
from webapp.shop.models import Customer


def register_customer(name: str, email: str, tax_code: str, password: str) -> Customer:
    email = email.strip().lower()
    if db.session.scalar(select(Customer.id).where(Customer.email == email)) is not None:
        raise DomainError("Esiste già un account con questo indirizzo e-mail: accedi.")
    customer = Customer(name=name.strip(), email=email, tax_code=tax_code)
    customer.set_password(password)
    db.session.add(customer)
    db.session.flush()
    return customer


def authenticate(email: str, password: str) -> Customer | None:
    customer = db.session.scalar(
        select(Customer).where(Customer.email == (email or "").strip().lower())
    )
    if customer is None or not customer.check_password(password or ""):
        return None
    return customer
