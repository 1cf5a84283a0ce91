"""A service's timeline for the back office: renewals (automatic and by hand), state changes and
e-mails, newest first; and the services in their grace window.

Renewals come from the `renewal` rows themselves; what has no row of its own (a state change, an
e-mail) is a ServiceEvent, written in the transaction that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from webapp.clock import format_day, rome_date, rome_midnight
from webapp.extensions import db
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceEvent, ServiceStatus
from webapp.shop.models import Customer, Product

EMAIL, STATE, RENEWAL = "email", "state", "renewal"


def record_event(service_id: int, kind: str, detail: str, at: datetime) -> None:
    """Add an entry to the service's timeline (flushed with the caller's transaction)."""
    db.session.add(ServiceEvent(service_id=service_id, kind=kind, detail=detail[:300], at=at))


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # email / state / renewal
    detail: str


_RENEWAL_WORDS = {
    RenewalStatus.PENDING: "in corso",
    RenewalStatus.SUCCEEDED: "riuscito",
    RenewalStatus.FAILED: "non riuscito",
    RenewalStatus.ABANDONED: "abbandonato (servizio scaduto)",
}


def _renewal_entry(renewal: Renewal) -> Entry:
    how = "Rinnovo manuale" if renewal.manual else "Rinnovo automatico"
    detail = (
        f"{how} del periodo in scadenza il {format_day(renewal.period_expires_at)}: "
        f"{_RENEWAL_WORDS[renewal.status]}"
    )
    if renewal.attempts:
        detail += f", tentativi {renewal.attempts}"
    if renewal.failure_reason and renewal.status is not RenewalStatus.SUCCEEDED:
        detail += f" ({renewal.failure_reason})"
    return Entry(
        renewal.completed_at or renewal.last_attempt_at or renewal.created_at, RENEWAL, detail
    )


def timeline_of(service_id: int) -> list[Entry]:
    """Everything that happened to the service, newest first."""
    renewals = db.session.scalars(select(Renewal).where(Renewal.service_id == service_id))
    events = db.session.scalars(select(ServiceEvent).where(ServiceEvent.service_id == service_id))
    entries = [_renewal_entry(r) for r in renewals]
    entries += [Entry(e.at, e.kind, e.detail) for e in events]
    return sorted(entries, key=lambda e: e.at, reverse=True)


@dataclass(frozen=True)
class GraceRow:
    service_id: int
    customer_id: int
    customer_name: str
    customer_email: str
    product_name: str
    expires_at: datetime
    grace_ends: date


def in_grace(today: date, limit: int = 500) -> list[GraceRow]:
    """Services expired and still in their grace window (renewable): the soonest to cease first."""
    rows = db.session.execute(
        select(
            Service.id, Service.customer_id, Service.expires_at, Product.name, Product.grace_days
        )
        .add_columns(Customer.name.label("customer_name"), Customer.email)
        .join(Product, Product.id == Service.product_id)
        .join(Customer, Customer.id == Service.customer_id)
        .where(
            Service.status.in_([ServiceStatus.ACTIVE, ServiceStatus.EXPIRED]),
            Service.expires_at < rome_midnight(today),
            Product.grace_days > 0,
            Product.renewable_by_hand,
        )
        .order_by(Service.expires_at, Service.id)
        .limit(limit * 4)
    )
    found = []
    for row in rows:
        ends = rome_date(row.expires_at) + timedelta(days=row.grace_days)
        if ends >= today:
            found.append(
                GraceRow(
                    row.id,
                    row.customer_id,
                    row.customer_name,
                    row.email,
                    row.name,
                    row.expires_at,
                    ends,
                )
            )
    return sorted(found, key=lambda r: (r.grace_ends, r.service_id))[:limit]
