"""Reminders before the renewal window opens: the amount, the card, how to turn it off."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.clock import expiring_by, format_day, rome_date
from webapp.extensions import db
from webapp.renewals import notices
from webapp.renewals.claims import snapshot_ids
from webapp.renewals.models import Service, ServiceStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import (
    RenewalSettings,
    card_usable,
    queue_customer_email,
    renewal_date,
)
from webapp.transaction import commit, rollback


def send_reminders(now: datetime, cfg: RenewalSettings, report: RenewalReport) -> None:
    """Before the window opens: the amount, the card and how to turn it off; and a card warning."""
    today = rome_date(now)
    service_ids = snapshot_ids(
        select(Service.id)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            Service.auto_renew,
            Service.expires_at >= expiring_by(today, cfg.window.days),  # not in the window yet
            Service.expires_at < expiring_by(today, cfg.reminder.days),
        )
        .order_by(Service.id)
    )
    for service_id in service_ids:
        service = db.session.get(Service, service_id)  # each commit below expires it anyway
        if service is None or not service.renewable:
            continue
        try:
            _remind(service, now, cfg, report)
            commit()
        except IntegrityError:
            rollback()  # another pass queued the same reminder first


def _remind(service: Service, now: datetime, cfg: RenewalSettings, report: RenewalReport) -> None:
    """Queue the reminder, and the card warning if the card will have expired by then."""
    if notices.last_announcement(service) is not None:
        notices.notify_change(service, now, cfg)  # reminded already: a new notice if it changed
        return
    renew_on = renewal_date(service, now, cfg.window)  # the window's first calendar day
    card = service.saved_card
    price = notices.announced_price(service, now, cfg)
    notices.record(service, notices.announcement_of(service, price))
    context = {"price": price, "card": card, "renew_on": renew_on}
    name = service.product.name
    subject = _("Promemoria: il %(day)s rinnoviamo %(name)s", day=format_day(renew_on), name=name)
    report.reminders += _queue(service, "reminder", subject, "renewal_reminder", context)
    if not card_usable(card, rome_date(renew_on)):
        subject = _("La carta per il rinnovo di %(name)s sarà scaduta", name=name)
        report.warnings += _queue(service, "card-expiring", subject, "card_expiring", context)


def _queue(service: Service, key: str, subject: str, template: str, context: dict) -> bool:
    """Queue one e-mail about the coming renewal, once per service and period (the dedupe key)."""
    period = int(service.expires_at.timestamp())
    dedupe_key = f"{key}-{service.id}-{period}"
    sent = queue_customer_email(service, subject, template, dedupe_key=dedupe_key, **context)
    return sent is not None
