"""Reminders before the renewal window opens: the amount, the card, how to turn it off."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.clock import expiring_by, format_day, rome_date
from webapp.extensions import db
from webapp.renewals.claims import snapshot_ids
from webapp.renewals.models import Service, ServiceStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import (
    RenewalSettings,
    card_usable,
    queue_customer_email,
    renewal_date,
    renewal_price,
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
        period = int(service.expires_at.timestamp())
        renew_on = renewal_date(service, now, cfg.window)  # the window's first calendar day
        card = service.saved_card
        price = renewal_price(service, cfg.vat_rate)
        try:
            sent = queue_customer_email(
                service,
                _(
                    "Promemoria: il %(day)s rinnoviamo %(name)s",
                    day=format_day(renew_on),
                    name=service.product.name,
                ),
                "renewal_reminder",
                dedupe_key=f"reminder-{service.id}-{period}",
                price=price,
                card=card,
                renew_on=renew_on,
            )
            report.reminders += sent is not None
            if not card_usable(card, rome_date(renew_on)):
                sent = queue_customer_email(
                    service,
                    _(
                        "La carta per il rinnovo di %(name)s sarà scaduta",
                        name=service.product.name,
                    ),
                    "card_expiring",
                    dedupe_key=f"card-expiring-{service.id}-{period}",
                    price=price,
                    card=card,
                    renew_on=renew_on,
                )
                report.warnings += sent is not None
            commit()
        except IntegrityError:
            rollback()  # another pass queued the same reminder first
