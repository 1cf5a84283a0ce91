"""A customer's address and password: confirmation links and the password reset.

Here (below the customer area and the back office) because both send these links: the customer
from the pages, an operator from the customer's file. Callers: `send_confirmation`,
`follow_confirmation`, `request_password_reset`, `reset_password`. Services flush; the caller
commits, and the e-mails leave through the outbox after the commit.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from webapp.errors import CheckoutError
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.outbox.services import queue_email
from webapp.shop import tokens
from webapp.shop.models import Customer
from webapp.shop.tokens import AccountToken, TokenPurpose

#: A second link asked within this time is not sent: the first one still works (double click).
RESEND_INTERVAL = timedelta(seconds=60)
RESET_PATH = "/password/nuova/"
CONFIRM_PATH = "/conferma-email/"


def normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()


def find_customer(email: str | None) -> Customer | None:
    """The open account with this address (a closed one no longer has it)."""
    address = normalise_email(email)
    if not address or len(address) > 254:
        return None
    return db.session.scalar(
        select(Customer).where(Customer.email == address, Customer.closed_at.is_(None))
    )


def end_sessions(customer_id: int) -> None:
    """Every session and remember-me cookie of the customer ends (the session version)."""
    db.session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(session_version=Customer.session_version + 1)
        .execution_options(synchronize_session=False)
    )


def _mail(to: str, subject: str, template: str, **context):
    """queue_email with the shop's URL the e-mail layout links to."""
    return queue_email(
        to, subject, template, shop_url=current_app.config["SHOP_BASE_URL"], **context
    )


def _link(path: str, raw: str) -> str:
    return f"{current_app.config['SHOP_BASE_URL']}{path}{raw}"


# --- address confirmation ----------------------------------------------------------------------

UNCONFIRMED_MESSAGE = _l(
    "Conferma il tuo indirizzo e-mail prima di confermare l'ordine: segui il link che ti "
    "abbiamo inviato, oppure usa «Invia di nuovo» per riceverne uno nuovo."
)


def is_confirmed(customer_id: int) -> bool:
    confirmed = db.session.scalar(
        select(Customer.email_confirmed_at).where(Customer.id == customer_id)
    )
    return confirmed is not None


def require_confirmed(customer_id: int) -> None:
    """The checkout confirms an order only for a confirmed address (renewal notices go there)."""
    if not is_confirmed(customer_id):
        raise CheckoutError(str(UNCONFIRMED_MESSAGE))


def send_confirmation(
    customer: Customer, now: datetime, min_interval: timedelta | None = RESEND_INTERVAL
) -> bool:
    """E-mail a confirmation link (48 hours) unless the address is confirmed already.

    False when nothing was sent: confirmed, closed, or a link sent less than a minute ago.
    """
    if customer.email_confirmed_at is not None or customer.closed_at is not None:
        return False
    issued = tokens.issue(customer.id, TokenPurpose.CONFIRM, now, min_interval=min_interval)
    if issued is None:
        return False
    token, raw = issued
    _mail(
        customer.email,
        _("Conferma il tuo indirizzo e-mail"),
        "confirm_email",
        dedupe_key=f"account-token:{token.id}",
        customer=customer,
        link=_link(CONFIRM_PATH, raw),
        hours=48,
    )
    return True


class Followed(enum.StrEnum):
    """What a confirmation link did."""

    CONFIRMED = "confirmed"  # the registration's address is confirmed
    ALREADY = "already"  # clicked again: the address was confirmed by this link
    CHANGED = "changed"  # the new address replaced the old one
    TAKEN = "taken"  # the new address belongs to another account meanwhile
    INVALID = "invalid"  # unknown, used, superseded or expired


def follow_confirmation(raw: str | None, now: datetime) -> tuple[Followed, Customer | None]:
    """Confirm the registration's address or a new one. Twins: the token's compare-and-set."""
    token = tokens.lookup(raw, {TokenPurpose.CONFIRM, TokenPurpose.EMAIL_CHANGE})
    if token is None:
        return Followed.INVALID, None
    customer = db.session.get(Customer, token.customer_id)
    if customer is None or customer.closed_at is not None:
        return Followed.INVALID, None
    if not tokens.spend(token, now):
        db.session.refresh(token)  # a twin spent it: read what it did
        db.session.refresh(customer)
        used = token.spent_how == "used" and token.purpose is TokenPurpose.CONFIRM
        if used and customer.email_confirmed_at is not None:
            return Followed.ALREADY, customer
        return Followed.INVALID, customer
    if token.purpose is TokenPurpose.CONFIRM:
        _confirm(customer, now)
        return Followed.CONFIRMED, customer
    return _change_email(customer, token, now)


def _confirm(customer: Customer, now: datetime) -> None:
    # Compare-and-set: the first confirmation's time stays.
    db.session.execute(
        update(Customer)
        .where(Customer.id == customer.id, Customer.email_confirmed_at.is_(None))
        .values(email_confirmed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(customer)


def _change_email(
    customer: Customer, token: AccountToken, now: datetime
) -> tuple[Followed, Customer]:
    old, new = customer.email, token.new_email or ""
    try:
        with db.session.begin_nested():  # guard: customer.email is unique
            customer.email = new
            customer.email_confirmed_at = now
    except IntegrityError:
        db.session.refresh(customer)
        return Followed.TAKEN, customer
    _mail(
        old,
        _("Il tuo indirizzo e-mail è stato cambiato"),
        "email_changed",
        dedupe_key=f"email-changed:{token.id}",
        customer=customer,
        old_email=old,
        new_email=new,
    )
    return Followed.CHANGED, customer


def request_email_change(customer: Customer, new_email: str, now: datetime) -> bool:
    """E-mail a link to the new address; the old one stays until the link is followed."""
    issued = tokens.issue(
        customer.id, TokenPurpose.EMAIL_CHANGE, now, new_email=normalise_email(new_email)
    )
    if issued is None:
        return False
    token, raw = issued
    _mail(
        token.new_email or "",
        _("Conferma il tuo nuovo indirizzo e-mail"),
        "confirm_new_email",
        dedupe_key=f"account-token:{token.id}",
        customer=customer,
        link=_link(CONFIRM_PATH, raw),
        new_email=token.new_email,
        hours=48,
    )
    _mail(
        customer.email,
        _("Richiesta di cambio dell'indirizzo e-mail"),
        "email_change_requested",
        dedupe_key=f"email-change-requested:{token.id}",
        customer=customer,
        new_email=token.new_email,
    )
    return True


# --- password reset ----------------------------------------------------------------------------


def request_password_reset(email: str | None, now: datetime) -> int | None:
    """E-mail a reset link (60 minutes) if the address has an account; the outbox id or None.

    The caller answers the same either way. Only a link younger than a minute stops a new one
    (a double click); otherwise the newer link spends the older ones.
    """
    customer = find_customer(email)
    if customer is None:
        return None
    return send_reset_link(customer, now)


def send_reset_link(customer: Customer, now: datetime) -> int | None:
    """A new reset link for the customer (also from the back office); the outbox id or None."""
    issued = tokens.issue(customer.id, TokenPurpose.RESET, now, min_interval=RESEND_INTERVAL)
    if issued is None:
        return None
    token, raw = issued
    email = _mail(
        customer.email,
        _("Reimposta la tua password"),
        "password_reset",
        dedupe_key=f"account-token:{token.id}",
        customer=customer,
        link=_link(RESET_PATH, raw),
        minutes=60,
        forgot_url=f"{current_app.config['SHOP_BASE_URL']}/password-dimenticata",
    )
    return email.id if email is not None else None


def live_reset_token(raw: str | None, now: datetime) -> AccountToken | None:
    """The reset link's row while it can still be used, else None."""
    token = tokens.lookup(raw, {TokenPurpose.RESET})
    return token if tokens.is_live(token, now) else None


def reset_password(raw: str | None, password: str, now: datetime) -> Customer | None:
    """Set the new password once per link; every session ends; a notice is e-mailed.

    None when the link is used, superseded or expired (a twin's POST got there first).
    """
    token = live_reset_token(raw, now)
    if token is None or not tokens.spend(token, now):
        return None
    customer = db.session.get(Customer, token.customer_id)
    if customer is None or customer.closed_at is not None:
        return None
    set_password(customer, password, now)
    # Following the link proves the address, as the confirmation link would.
    _confirm(customer, now)
    return customer


def set_password(customer: Customer, password: str, now: datetime) -> None:
    """A new password: other sessions end, reset links die, the owner is told."""
    customer.set_password(password)
    db.session.flush()
    end_sessions(customer.id)
    tokens.revoke(customer.id, now, TokenPurpose.RESET)
    db.session.refresh(customer)
    _mail(
        customer.email,
        _("La tua password è stata cambiata"),
        "password_changed",
        dedupe_key=None,  # each change is told
        customer=customer,
        forgot_url=f"{current_app.config['SHOP_BASE_URL']}/password-dimenticata",
    )
