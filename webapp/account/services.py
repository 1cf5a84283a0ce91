"""Accounts: registration and authentication."""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import lru_cache

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.clock import rome_date
from webapp.extensions import db
from webapp.outbox.services import queue_email
from webapp.shop import accounts
from webapp.shop.models import Customer


def register_customer(
    name: str, email: str, tax_code: str, password: str, now: datetime
) -> Customer | None:
    """The new customer; None if the e-mail has an account already (its owner is told by mail).

    The form answers both the same way, so it does not tell anyone which addresses have an
    account; the owner learns that someone tried, at most once a day.
    """
    email = email.strip().lower()
    existing = db.session.scalar(select(Customer).where(Customer.email == email))
    if existing is not None:
        _hash(password)  # the same work as a new account: the answer takes as long
        shop_url = current_app.config["SHOP_BASE_URL"]
        queue_email(
            existing.email,
            _("Tentativo di registrazione con il tuo indirizzo e-mail"),
            "registration_attempt",
            dedupe_key=f"registration-attempt:{existing.id}:{rome_date(now).isoformat()}",
            customer=existing,
            shop_url=shop_url,
            login_url=f"{shop_url}/accedi",
        )
        return None
    customer = Customer(name=name.strip(), email=email, tax_code=tax_code)
    customer.set_password(password)
    db.session.add(customer)
    db.session.flush()
    accounts.send_confirmation(customer, now, min_interval=None)
    return customer


def _hash(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@lru_cache(maxsize=4)
def _dummy_hash(method: str) -> str:
    """A hash of a random password with the configured method: checked for unknown e-mails."""
    return generate_password_hash(secrets.token_urlsafe(16), method=method)


def authenticate(email: str, password: str) -> Customer | None:
    """The customer with this e-mail and password, else None.

    An unknown e-mail costs the same hash check as a known one (against a dummy hash of the
    configured method): the time of the answer does not tell which e-mails have an account.
    """
    customer = db.session.scalar(
        select(Customer).where(Customer.email == (email or "").strip().lower())
    )
    if customer is None:
        stored = _dummy_hash(current_app.config["PASSWORD_HASH_METHOD"])
    else:
        stored = customer.password_hash
    matches = check_password_hash(stored, password or "")
    return customer if customer is not None and matches else None


def end_sessions(customer_id: int) -> None:
    """Invalidate every session and remember-me cookie of the customer ("Esci")."""
    accounts.end_sessions(customer_id)
