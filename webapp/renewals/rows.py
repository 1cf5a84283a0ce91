""" "I miei servizi" as plain rows: each service with its product, card, current renewal and the
price of the day, in one Core statement.

The services page and the row an htmx action re-renders show nothing but these values, so they
are read as rows instead of Service, Product, SavedCard and Renewal objects through the ORM (one
SELECT, no lazy loads, nothing for a commit to expire). The rows borrow the models' own
properties, so a row reads exactly as its object would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, bindparam, select

from webapp.errors import NotFound
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.payments.picker import CARD_COLUMNS, CardRow, card_rows
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.shop.catalogue import price_changes_after_day_sql, price_on_day_sql
from webapp.shop.models import BillingProfile, CustomerType, Product, ServiceKind


@dataclass(frozen=True)
class ProductRow:
    id: int
    kind: ServiceKind
    name: str
    yearly_price_cents: int
    promotional: bool
    renewable_by_hand: bool
    renew_before_days: int | None
    grace_days: int

    auto_renewable = Product.auto_renewable
    allowed_years = Product.allowed_years


@dataclass(frozen=True)
class RenewalRow:
    """What the row shows of the current period's renewal."""

    status: RenewalStatus
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    failure_code: str | None
    failure_reason: str | None

    open = Renewal.open


@dataclass(frozen=True)
class ServiceRow:
    id: int
    customer_id: int
    status: ServiceStatus
    expires_at: datetime
    auto_renew: bool
    frequency_years: int
    saved_card_id: int | None
    cancelled_at: datetime | None
    announced_period: datetime | None
    product: ProductRow
    saved_card: CardRow | None

    renewable = Service.renewable
    active = Service.active
    renews = Service.renews


@dataclass(frozen=True)
class ServiceRead:
    """A service as read, with the yearly list price of the day and who pays it."""

    service: ServiceRow
    renewal: RenewalRow | None
    yearly_cents: int  # the list price in force on the day read (shop.catalogue.price_on)
    split_payment: bool
    # A price change is scheduled after the day read: the renewal day's price must be looked up
    # (otherwise it is `yearly_cents`, with no further statement).
    price_changes_ahead: bool = False


_service, _product, _card = Service.__table__, Product.__table__, SavedCard.__table__
_renewal, _billing = Renewal.__table__, BillingProfile.__table__
_other_card = _card.alias("other_card")

_SERVICES = (
    select(
        *(_service.c[name] for name in ServiceRow.__annotations__ if name in _service.c),
        *(_product.c[name].label(f"product_{name}") for name in ProductRow.__annotations__),
        *(_card.c[name].label(f"card_{name}") for name in CARD_COLUMNS),
        *(_renewal.c[name].label(f"renewal_{name}") for name in RenewalRow.__annotations__),
        price_on_day_sql().label("yearly_cents"),
        price_changes_after_day_sql().label("price_changes_ahead"),
        _billing.c.customer_type,
    )
    .select_from(
        _service.join(_product, _product.c.id == _service.c.product_id)
        # A removed card renews nothing (remove_card unsets it): it is not the service's card.
        .outerjoin(
            _card, and_(_card.c.id == _service.c.saved_card_id, _card.c.removed_at.is_(None))
        )
        .outerjoin(
            _renewal,
            and_(
                _renewal.c.service_id == _service.c.id,
                _renewal.c.period_expires_at == _service.c.expires_at,
            ),
        )
        .outerjoin(_billing, _billing.c.customer_id == _service.c.customer_id)
    )
    .where(_service.c.customer_id == bindparam("customer"))
)

# One service, with the customer's saved cards (its card menu) joined: one statement in all.
_ONE_SERVICE = (
    _SERVICES.add_columns(*(_other_card.c[name].label(f"other_{name}") for name in CARD_COLUMNS))
    .outerjoin(
        _other_card,
        and_(
            _other_card.c.customer_id == _service.c.customer_id,
            _other_card.c.removed_at.is_(None),
        ),
    )
    .where(_service.c.id == bindparam("service"))
    .order_by(_other_card.c.id.desc())
)


def _part(row, prefix: str, names) -> tuple:
    return tuple(getattr(row, f"{prefix}{name}") for name in names)


def _read(row) -> ServiceRead:
    card_id = row.card_id
    service = ServiceRow(
        *(getattr(row, name) for name in ServiceRow.__annotations__ if name in _service.c),
        product=ProductRow(*_part(row, "product_", ProductRow.__annotations__)),
        saved_card=CardRow(*_part(row, "card_", CARD_COLUMNS)) if card_id is not None else None,
    )
    renewal = None
    if row.renewal_status is not None:
        renewal = RenewalRow(*_part(row, "renewal_", RenewalRow.__annotations__))
    return ServiceRead(
        service,
        renewal,
        row.yearly_cents,
        _split(row.customer_type),
        bool(row.price_changes_ahead),
    )


def _split(customer_type: CustomerType | None) -> bool:
    return customer_type is not None and customer_type.split_payment


def _usable(cards: list[CardRow], today: date) -> list[CardRow]:
    return [card for card in cards if not card.is_expired(today)]


def services_of(customer_id: int, today: date) -> tuple[list[ServiceRead], list[CardRow]]:
    """The customer's services (active first, soonest expiry first) and the cards valid today
    (newest first), in two statements."""
    params = {"customer": customer_id, "day": today}
    reads = [_read(row) for row in db.session.execute(_SERVICES, params)]
    cards = card_rows(customer_id)
    reads.sort(key=lambda r: (not r.service.active, r.service.expires_at, r.service.id))
    return reads, _usable(cards, today)


def service_of(service_id: int, customer_id: int, today: date) -> tuple[ServiceRead, list[CardRow]]:
    """One service of the customer (another customer's is not found) and the cards valid today,
    in one statement."""
    params = {"customer": customer_id, "service": service_id, "day": today}
    rows = db.session.execute(_ONE_SERVICE, params).all()
    if not rows:
        raise NotFound("Servizio non trovato.")
    cards = [
        CardRow(*_part(row, "other_", CARD_COLUMNS)) for row in rows if row.other_id is not None
    ]
    return _read(rows[0]), _usable(cards, today)
