"""Services (subscriptions): created when an order is paid, managed from the customer area.

The renewal engine (webapp.renewals.engine) charges them and the customer manages them
(webapp.renewals.manage); this module holds what the engine, the payment settlement and the
customer area share: prices, renewal rows, settings, e-mails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, tuple_
from sqlalchemy.orm import joinedload

from webapp.clock import now_utc, rome_date, rome_midnight
from webapp.errors import InvalidChoice, NotFound
from webapp.extensions import db
from webapp.money import vat_cents
from webapp.outbox.services import queue_email
from webapp.payments.models import SavedCard
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceEvent
from webapp.renewals.rows import ServiceRow
from webapp.shop.billing import split_payment_for
from webapp.shop.catalogue import price_on
from webapp.shop.models import Customer
from webapp.shop.order_models import Order

RENEWAL_TRANSITIONS = {
    RenewalStatus.PENDING: {RenewalStatus.SUCCEEDED, RenewalStatus.ABANDONED},
    RenewalStatus.FAILED: {RenewalStatus.SUCCEEDED, RenewalStatus.ABANDONED},
}


class CardNeeded(InvalidChoice):
    """Auto-renewal cannot be turned on: the customer has no valid card to renew with."""


def services_of_order(order: Order) -> list[Service]:
    line_ids = [line.id for line in order.lines]
    return list(
        db.session.scalars(
            select(Service)
            .where(Service.order_line_id.in_(line_ids))
            .options(joinedload(Service.saved_card))
        )
    )


def get_service(service_id: int, customer_id: int) -> Service:
    """A service of this customer with its card (its row shows both), in one read; another
    customer's is simply not found."""
    service = db.session.scalar(
        select(Service)
        .where(Service.id == service_id, Service.customer_id == customer_id)
        .options(joinedload(Service.saved_card))
    )
    if service is None:
        raise NotFound("Servizio non trovato.")
    return service


def list_services(customer_id: int) -> list[Service]:
    """The customer's services: active first, soonest expiry first."""
    services = db.session.scalars(
        select(Service)
        .where(Service.customer_id == customer_id)
        .options(joinedload(Service.saved_card))  # many-to-one: in the same statement
    ).all()
    return sorted(services, key=lambda s: (not s.active, s.expires_at, s.id))


@dataclass(frozen=True)
class RenewalSettings:
    window: timedelta
    retry_days: tuple[int, ...]
    reminder: timedelta
    vat_rate: int


def settings() -> RenewalSettings:
    """The renewal window, retry days and reminder lead time from the app config."""
    cfg = current_app.config
    return RenewalSettings(
        window=timedelta(days=cfg["RENEWAL_WINDOW_DAYS"]),
        retry_days=tuple(sorted(set(cfg["RENEWAL_RETRY_DAYS"]), reverse=True)),
        reminder=timedelta(days=cfg["RENEWAL_REMINDER_DAYS"]),
        vat_rate=cfg["VAT_RATE_PERCENT"],
    )


@dataclass(frozen=True)
class RenewalPrice:
    years: int
    net_cents: int
    vat_cents: int
    # A public administration pays the net only (scissione dei pagamenti): see shop.pricing.
    split_payment: bool = False

    @classmethod
    def of(cls, yearly_cents: int, years: int, vat_rate: int, split_payment: bool):
        """The price of `years` at a yearly list price, with its VAT."""
        net = yearly_cents * years
        return cls(years, net, vat_cents(net, vat_rate), split_payment)

    @property
    def yearly_net_cents(self) -> int:
        return self.net_cents // self.years

    @property
    def total_cents(self) -> int:
        """What the card is charged."""
        return self.net_cents if self.split_payment else self.net_cents + self.vat_cents

    @property
    def vat_note(self) -> str:
        """What the charged amount says about VAT, in the customer's words."""
        return (
            _("IVA non addebitata: scissione dei pagamenti")
            if self.split_payment
            else _("IVA inclusa")
        )


def renewal_price(
    service: Service,
    vat_rate: int | None = None,
    day: date | None = None,
    split_payment: bool | None = None,
) -> RenewalPrice:
    """The yearly list price valid on `day` (default: today in Italy) x the frequency, plus VAT:
    no discount is ever carried over.

    The customer's billing data of today decide split payment (a public administration);
    a caller pricing many services of one customer passes it, read once.
    """
    rate = current_app.config["VAT_RATE_PERCENT"] if vat_rate is None else vat_rate
    yearly = price_on(service.product, day or rome_date(now_utc()))
    split = split_payment_for(service.customer_id) if split_payment is None else split_payment
    return RenewalPrice.of(yearly, service.frequency_years, rate, split)


def announced_price(
    service: Service | ServiceRow,
    now: datetime,
    cfg: RenewalSettings,
    split_payment: bool | None = None,
    yearly_cents: int | None = None,
) -> RenewalPrice:
    """The one price of a coming renewal, for the reminder, "I miei servizi" and the charge:
    the list price in force on the renewal day (today once in the window) x the frequency.

    `yearly_cents`: that list price when the caller has it already (a row read with no price
    change scheduled after today: today's price is the renewal day's).
    """
    if yearly_cents is not None:
        split = split_payment_for(service.customer_id) if split_payment is None else split_payment
        return RenewalPrice.of(yearly_cents, service.frequency_years, cfg.vat_rate, split)
    day = rome_date(renewal_date(service, now, cfg.window))
    return renewal_price(service, cfg.vat_rate, day, split_payment)


def renewal_date(service: Service, now: datetime, window: timedelta) -> datetime:
    """When the card will be charged: the first day of the window, or now if already in it."""
    first_day = rome_date(service.expires_at) - timedelta(days=window.days)
    return max(rome_midnight(first_day), now)


def current_renewal(service: Service) -> Renewal | None:
    """The renewal row of the service's current period, if the engine opened one."""
    return db.session.scalar(
        select(Renewal).where(
            Renewal.service_id == service.id, Renewal.period_expires_at == service.expires_at
        )
    )


def current_renewals(services: list[Service]) -> dict[int, Renewal]:
    """The current-period renewal rows of many services in one query, by service id."""
    if not services:
        return {}
    pairs = [(s.id, s.expires_at) for s in services]
    rows = db.session.scalars(
        select(Renewal).where(tuple_(Renewal.service_id, Renewal.period_expires_at).in_(pairs))
    )
    return {r.service_id: r for r in rows}


def card_usable(card: SavedCard | None, on: date) -> bool:
    """A card the bank can still be asked to charge on that day."""
    return card is not None and card.removed_at is None and not card.is_expired(on)


def queue_customer_email(
    service: Service, subject: str, template: str, dedupe_key: str | None = None, **context
):
    """Queue an e-mail about a service to its owner, with the links to the customer area."""
    customer = db.session.get(Customer, service.customer_id)
    shop_url = current_app.config["SHOP_BASE_URL"]
    sent = queue_email(
        customer.email,
        subject,
        template,
        dedupe_key=dedupe_key,
        customer=customer,
        service=service,
        shop_url=shop_url,
        area_url=f"{shop_url}/area-clienti",
        cards_url=f"{shop_url}/area-clienti/carte",
        renew_url=f"{shop_url}/area-clienti/servizi/{service.id}/rinnova",  # "Rinnova ora"
        **context,
    )
    if sent is not None:  # the back office's timeline of the service
        db.session.add(ServiceEvent(service_id=service.id, kind="email", detail=subject[:300]))
    return sent
