"""Reminders before a renewal: one e-mail per customer and day, listing its services.

A customer whose services fall due together gets one e-mail that day, not one per service. It
lists two kinds of service:
- with auto-renewal, once per period, RENEWAL_REMINDER_DAYS before the window opens: the amount,
  the day and the card of the charge, how to turn it off, and a warning when the card will have
  expired by then;
- without auto-renewal (issue 28), on the calendar days RENEWAL_DUE_REMINDER_DAYS before the
  expiry (e.g. 60, 30, 7 and the day itself): the price in force and "Rinnova ora". A renewed
  service has a new expiry, so the old period's days no longer match: none is sent after it.

Guards: an auto-renewing service's announcement is recorded with a compare-and-set
(notices.record) and listed only by the pass that wins it; the e-mail's dedupe key is per
customer and day (`reminders-<customer>-<day>`), so two passes, or a pass rerun the same day,
queue at most one e-mail per customer per day. A pass that finds the day's e-mail queued rolls
the customer back: its announcements are recorded by the pass whose e-mail they are in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, false, or_, select
from sqlalchemy.exc import IntegrityError

from webapp.clock import add_years, expiring_by, format_day, rome_date, rome_midnight
from webapp.extensions import db
from webapp.outbox.services import queue_email
from webapp.renewals import notices
from webapp.renewals.claims import snapshot_ids
from webapp.renewals.lifecycle import life_of
from webapp.renewals.models import Service, ServiceEvent, ServiceStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import RenewalPrice, RenewalSettings, card_usable, renewal_date
from webapp.renewals.services import renewal_price as price_in_force
from webapp.shop.models import Customer, Product
from webapp.transaction import commit, rollback


@dataclass(frozen=True)
class Reminder:
    """One service in the day's e-mail: renewed automatically on `renew_on`, or to renew by
    hand before its expiry (`days_left`, the expiry after `price.years`)."""

    service: Service
    price: RenewalPrice
    renew_on: datetime | None = None  # auto-renewal: the day of the charge
    card_expired: bool = False  # auto-renewal: the card will not be valid on that day
    days_left: int | None = None  # without auto-renewal: days to the expiry (0: today)

    @property
    def new_expiry(self) -> datetime:
        return add_years(self.service.expires_at, self.price.years)


def reminder_days() -> frozenset[int]:
    """The days before the expiry on which a service without auto-renewal is reminded."""
    return frozenset(current_app.config["RENEWAL_DUE_REMINDER_DAYS"])


def _auto(today: date, cfg: RenewalSettings):
    """Auto-renewing services in the reminder range, before their window opens."""
    return (
        Service.auto_renew,
        Service.expires_at >= expiring_by(today, cfg.window.days),
        Service.expires_at < expiring_by(today, cfg.reminder.days),
    )


def _by_hand(today: date, days: frozenset[int]):
    """Services without auto-renewal that may be on a reminder day (the day checked in Python)."""
    if not days:
        return (false(),)
    return (
        ~Service.auto_renew,
        Service.product_id.in_(select(Product.id).where(Product.renewable_by_hand)),
        Service.expires_at >= rome_midnight(today),
        Service.expires_at < expiring_by(today, max(days)),
    )


def send_reminders(now: datetime, cfg: RenewalSettings, report: RenewalReport) -> None:
    """Each customer with services to remind today: one e-mail listing them, committed alone."""
    today, days = rome_date(now), reminder_days()
    customers = snapshot_ids(
        select(Service.customer_id)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            or_(and_(*_auto(today, cfg)), and_(*_by_hand(today, days))),
        )
        .group_by(Service.customer_id)
        .order_by(Service.customer_id)
    )
    for customer_id in customers:
        auto = [s for s in _services(customer_id, _auto(today, cfg)) if s.renewable]
        told = [s for s in auto if notices.last_announcement(s) is not None]
        for service in told:  # reminded already: a notice of its own if the amount changed
            _notify_change(service, now, cfg)
        untold = [s for s in auto if s not in told]
        try:
            if _remind(customer_id, untold, now, cfg, report):
                commit()
            else:
                rollback()  # nothing to say, or today's e-mail went out already
        except IntegrityError:
            rollback()  # another pass queued today's e-mail first


def _notify_change(service: Service, now: datetime, cfg: RenewalSettings) -> None:
    """The amount, years or card changed since the reminder: the new notice, committed alone."""
    try:
        notices.notify_change(service, now, cfg)
        commit()
    except IntegrityError:
        rollback()  # a twin pass queued the same notice first


def _services(customer_id: int, clauses) -> list[Service]:
    return list(
        db.session.scalars(
            select(Service)
            .where(Service.customer_id == customer_id, Service.status == ServiceStatus.ACTIVE)
            .where(*clauses)
            .order_by(Service.expires_at, Service.id)
        )
    )


def _remind(customer_id: int, untold: list[Service], now: datetime, cfg, report) -> bool:
    """Queue the customer's e-mail of the day, with the auto-renewing services not reminded
    yet (`untold`); False (to roll back) when there is none."""
    today, days = rome_date(now), reminder_days()
    auto = [item for service in untold if (item := _announce(service, now, cfg)) is not None]
    by_hand = [
        Reminder(service, price_in_force(service, day=today), days_left=left)
        for service in _services(customer_id, _by_hand(today, days))
        if (left := (rome_date(service.expires_at) - today).days) in days
        and life_of(service, today).renewable
    ]
    if not (auto or by_hand) or not _queue(customer_id, auto, by_hand, today):
        return False
    report.reminders += len(auto)
    report.warnings += sum(item.card_expired for item in auto)
    report.due_reminders += len(by_hand)
    return True


def _announce(service: Service, now: datetime, cfg: RenewalSettings) -> Reminder | None:
    """Record the amount, years and card about to be announced; None when a twin pass did."""
    price = notices.announced_price(service, now, cfg)
    if not notices.record(service, notices.announcement_of(service, price)):
        return None
    renew_on = renewal_date(service, now, cfg.window)  # the window's first calendar day
    expired = not card_usable(service.saved_card, rome_date(renew_on))
    return Reminder(service, price, renew_on=renew_on, card_expired=expired)


def subject_of(auto: list[Reminder], by_hand: list[Reminder]) -> str:
    """One service: what happens to it; several: how many."""
    if len(auto) + len(by_hand) > 1:
        return _("Promemoria: %(count)s servizi in scadenza", count=len(auto) + len(by_hand))
    if auto:
        [item] = auto
        name = item.service.product.name
        if item.card_expired:
            return _("La carta per il rinnovo di %(name)s sarà scaduta", name=name)
        return _(
            "Promemoria: il %(day)s rinnoviamo %(name)s", day=format_day(item.renew_on), name=name
        )
    [item] = by_hand
    name = item.service.product.name
    if item.days_left:
        day = format_day(item.service.expires_at)
        return _("Promemoria: %(name)s scade il %(day)s", name=name, day=day)
    return _("%(name)s scade oggi: rinnovalo ora", name=name)


def _queue(customer_id: int, auto: list, by_hand: list, today: date) -> bool:
    """The day's e-mail, once (its dedupe key), and a line in each listed service's timeline."""
    customer = db.session.get(Customer, customer_id)
    shop_url = current_app.config["SHOP_BASE_URL"]
    subject = subject_of(auto, by_hand)
    sent = queue_email(
        customer.email,
        subject,
        "renewal_reminders",
        dedupe_key=f"reminders-{customer_id}-{today.isoformat()}",
        customer=customer,
        auto=auto,
        by_hand=by_hand,
        shop_url=shop_url,
        area_url=f"{shop_url}/area-clienti",
        cards_url=f"{shop_url}/area-clienti/carte",
    )
    if sent is None:
        return False
    for item in auto + by_hand:
        db.session.add(ServiceEvent(service_id=item.service.id, kind="email", detail=subject))
    return True
