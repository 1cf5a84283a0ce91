"""Chiudi il mio account (GDPR art. 17): the person's data go, what the law keeps stays.

Auto-renewal goes off on every service, saved cards are removed (the caller then asks the bank
to forget their tokens), billing data and links are deleted, every session ends, and the
customer row is anonymised (name, e-mail, tax code, password). Orders, payments and invoices
stay, linked to the anonymised row: each invoice keeps its own copy of the billing data (10
years, art. 2220 c.c.). The address is free again: it can register as a new customer.

Guard against twins: the compare-and-set on `customer.closed_at IS NULL`; only the winner
anonymises and queues the final e-mail (also unique by its dedupe key).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, select, update

from webapp.errors import DomainError
from webapp.extensions import db
from webapp.outbox.models import OutboxEmail
from webapp.outbox.services import queue_email
from webapp.payments.models import Payment, PaymentStatus, SavedCard
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.shop import tokens
from webapp.shop.accounts import end_sessions
from webapp.shop.models import BillingProfile, Cart, CartLine, Customer
from webapp.shop.order_models import Order

CLOSED_NAME = "Cliente cancellato"


class ClosureBlocked(DomainError):
    """A payment or a renewal charge is under way: the account cannot close now."""


def closed_email(customer_id: int) -> str:
    """The address a closed account keeps: unique, undeliverable, not the person's."""
    return f"chiuso-{customer_id}@account-chiuso.invalid"


def refuse_if_busy(customer_id: int, now: datetime) -> None:
    """An order being paid or a renewal being charged blocks the closure, with the reason."""
    paying = db.session.scalar(
        select(Payment.id)
        .join(Order, Order.id == Payment.order_id)
        .where(
            Order.customer_id == customer_id,
            Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.UNKNOWN]),
        )
        .limit(1)
    )
    if paying is not None:
        raise ClosureBlocked(
            _(
                "Un pagamento è in corso: non possiamo chiudere l'account finché la banca non "
                "ne conferma l'esito. Riprova tra qualche minuto."
            )
        )
    charging = db.session.scalar(
        select(Renewal.id)
        .join(Service, Service.id == Renewal.service_id)
        .where(
            Service.customer_id == customer_id,
            Renewal.status == RenewalStatus.PENDING,
            Renewal.claimed_until > now,
        )
        .limit(1)
    )
    if charging is not None:
        raise ClosureBlocked(_("Un rinnovo è in corso di addebito: riprova tra qualche minuto."))


def close_account(customer_id: int, now: datetime) -> list[str] | None:
    """Close and anonymise; the saved cards' bank tokens to forget, or None if a twin closed it."""
    refuse_if_busy(customer_id, now)
    won = db.session.execute(
        update(Customer)
        .where(Customer.id == customer_id, Customer.closed_at.is_(None))
        .values(closed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        return None
    customer = db.session.get(Customer, customer_id)
    db.session.refresh(customer)
    old_email, name = customer.email, customer.name
    db.session.execute(
        update(Service)
        .where(Service.customer_id == customer_id)
        .values(auto_renew=False)
        .execution_options(synchronize_session=False)
    )
    bank_tokens = _remove_cards(customer_id, now)
    _forget_personal_data(customer, now)
    queue_email(
        old_email,
        _("Il tuo account PEC Shop è stato chiuso"),
        "account_closed",
        dedupe_key=f"account-closed:{customer_id}",
        name=name,
        email=old_email,
        shop_url=current_app.config["SHOP_BASE_URL"],
    )
    # Sent e-mails keep their text (what the shop told, e.g. receipts) but not the address.
    db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.to_addr == old_email, OutboxEmail.sent_at.is_not(None))
        .values(to_addr=closed_email(customer_id))
        .execution_options(synchronize_session=False)
    )
    return bank_tokens


def _remove_cards(customer_id: int, now: datetime) -> list[str]:
    cards = db.session.scalars(
        select(SavedCard).where(
            SavedCard.customer_id == customer_id, SavedCard.removed_at.is_(None)
        )
    ).all()
    db.session.execute(
        update(Service)
        .where(Service.customer_id == customer_id)
        .values(saved_card_id=None)
        .execution_options(synchronize_session=False)
    )
    for card in cards:
        card.removed_at = now
        card.holder = ""  # brand and last four stay: the payments show which card paid
    db.session.flush()
    return [card.gateway_token for card in cards]


def _forget_personal_data(customer: Customer, now: datetime) -> None:
    customer_id = customer.id
    db.session.execute(delete(BillingProfile).where(BillingProfile.customer_id == customer_id))
    cart_ids = select(Cart.id).where(Cart.customer_id == customer_id).scalar_subquery()
    db.session.execute(delete(CartLine).where(CartLine.cart_id.in_(cart_ids)))
    tokens.revoke(customer_id, now)
    customer.name = CLOSED_NAME
    customer.email = closed_email(customer_id)
    customer.tax_code = ""
    customer.set_password(secrets.token_urlsafe(32))  # nobody knows it: no login
    customer.email_confirmed_at = None
    db.session.flush()
    end_sessions(customer_id)
