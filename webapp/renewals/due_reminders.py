"""Reminders to services WITHOUT auto-renewal (issue 28): on calendar days before the expiry
(RENEWAL_DUE_REMINDER_DAYS, e.g. 60, 30, 7 and the day itself), each with the price in force
and the "Rinnova ora" link.

The reminders of auto-renewing services are webapp.renewals.reminders'. Guard: the outbox's
unique dedupe key is per service and calendar day (`renew-due-<service>-<day>`), so two passes,
or a pass rerun the same day, send at most one e-mail per service per day. A renewed service has
a new expiry, so the old period's days no longer match: none is sent after the renewal.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.clock import add_years, expiring_by, format_day, rome_date, rome_midnight
from webapp.extensions import db
from webapp.renewals.claims import snapshot_ids
from webapp.renewals.lifecycle import life_of
from webapp.renewals.models import Service, ServiceStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import queue_customer_email, renewal_price
from webapp.shop.models import Product
from webapp.transaction import commit, rollback


def reminder_days() -> tuple[int, ...]:
    return tuple(sorted(set(current_app.config["RENEWAL_DUE_REMINDER_DAYS"]), reverse=True))


def send_due_reminders(now: datetime, report: RenewalReport) -> None:
    """Remind each service without auto-renewal that is on one of the reminder days today."""
    days = reminder_days()
    if not days:
        return
    today = rome_date(now)
    service_ids = snapshot_ids(
        select(Service.id)
        .join(Product, Product.id == Service.product_id)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            ~Service.auto_renew,
            Product.renewable_by_hand,
            Service.expires_at >= rome_midnight(today),
            Service.expires_at < expiring_by(today, max(days)),
        )
        .order_by(Service.id)
    )
    for service_id in service_ids:
        service = db.session.get(Service, service_id)
        days_left = (rome_date(service.expires_at) - today).days
        if days_left not in days or not life_of(service, today).renewable:
            continue
        try:
            report.due_reminders += remind(service, days_left, today)
            commit()
        except IntegrityError:
            rollback()  # a twin pass queued today's reminder first


def remind(service: Service, days_left: int, today) -> bool:
    """Queue today's reminder of the service; False if one was queued today already."""
    name = service.product.name
    if days_left:
        subject = _(
            "Promemoria: %(name)s scade il %(day)s", name=name, day=format_day(service.expires_at)
        )
    else:
        subject = _("%(name)s scade oggi: rinnovalo ora", name=name)
    price = renewal_price(service, day=today)
    sent = queue_customer_email(
        service,
        subject,
        "renewal_due",
        dedupe_key=f"renew-due-{service.id}-{today.isoformat()}",
        days_left=days_left,
        price=price,
        new_expiry=add_years(service.expires_at, price.years),
    )
    return sent is not None


def days_before(expires_at: datetime, days: int) -> datetime:
    """The first instant of the day `days` before the expiry day (tests and QA time travel)."""
    return rome_midnight(rome_date(expires_at) - timedelta(days=days))
