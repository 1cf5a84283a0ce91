"""The announced price is the charged price.

One function prices a renewal for everyone who quotes it: the reminder, "I miei servizi" and
the charge itself (`announced_price`: the list price in force on the renewal day x the
frequency, plus VAT; split payment for a public administration). Each service remembers the last
notice it was sent (period, amount, years, card). Before a charge, a renewal whose amount,
frequency or card is not what was last announced for this period (a price change, a frequency
or card changed after the reminder, or no reminder at all) gets a new notice with the new amount,
and the charge waits for the next day (on the expiry day itself it goes ahead after the notice).

Guard: the notice is recorded with a compare-and-set on the service's last announcement, and
queued only by the winner; its e-mail's dedupe key names the announcement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import update

from webapp.clock import as_utc, format_day, rome_date, rome_midnight
from webapp.extensions import db
from webapp.money import format_eur
from webapp.renewals.models import Service
from webapp.renewals.services import (
    RenewalPrice,
    RenewalSettings,
    announced_price,
    queue_customer_email,
    renewal_date,
)

__all__ = ["announced_price", "announce_before_charge", "notify_change", "record"]


@dataclass(frozen=True)
class Announcement:
    """What a notice told the customer about the renewal of one period."""

    period: datetime
    total_cents: int
    years: int
    card_id: int | None


def renewal_day(service, now: datetime, cfg: RenewalSettings) -> date:
    """The Italian calendar day the card will be charged (today once in the window)."""
    return rome_date(renewal_date(service, now, cfg.window))


def announcement_of(service: Service, price: RenewalPrice) -> Announcement:
    return Announcement(
        as_utc(service.expires_at), price.total_cents, price.years, service.saved_card_id
    )


def last_announcement(service: Service) -> Announcement | None:
    """The last notice sent for the service's current period, if any."""
    if service.announced_period is None or as_utc(service.announced_period) != as_utc(
        service.expires_at
    ):
        return None
    return Announcement(
        as_utc(service.announced_period),
        service.announced_cents,
        service.announced_years,
        service.announced_card_id,
    )


def record(service: Service, new: Announcement) -> bool:
    """Compare-and-set the service's last announcement to `new`; False when unchanged or when
    a twin recorded it first."""
    old = (
        service.announced_period,
        service.announced_cents,
        service.announced_years,
        service.announced_card_id,
    )
    if old == (new.period, new.total_cents, new.years, new.card_id):
        return False
    columns = (
        Service.announced_period,
        Service.announced_cents,
        Service.announced_years,
        Service.announced_card_id,
    )
    same = [c.is_(None) if v is None else c == v for c, v in zip(columns, old, strict=True)]
    moved = db.session.execute(
        update(Service)
        .where(Service.id == service.id, *same)
        .values(
            announced_period=new.period,
            announced_cents=new.total_cents,
            announced_years=new.years,
            announced_card_id=new.card_id,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(service)
    return moved == 1


def notify_change(service: Service, now: datetime, cfg: RenewalSettings) -> bool:
    """After the reminder: announce the renewal again if its amount, years or card changed.
    True when a new notice was queued."""
    db.session.refresh(service)  # the change was written with a plain UPDATE
    if last_announcement(service) is None:
        return False  # nothing announced for this period yet: the reminder will say it
    return _announce(service, announced_price(service, now, cfg), now, cfg)


def _announce(service: Service, price: RenewalPrice, now: datetime, cfg: RenewalSettings) -> bool:
    new = announcement_of(service, price)
    if last_announcement(service) == new or not record(service, new):
        return False
    renew_on = rome_midnight(renewal_day(service, now, cfg))
    queue_customer_email(
        service,
        _(
            "Rinnovo di %(name)s: il %(day)s addebiteremo %(amount)s",
            name=service.product.name,
            day=format_day(max(renew_on, now)),
            amount=format_eur(price.total_cents),
        ),
        "renewal_notice",
        dedupe_key=f"notice-{service.id}-{int(new.period.timestamp())}-"
        f"{new.total_cents}-{new.years}-{new.card_id}-{int(now.timestamp())}",
        price=price,
        card=service.saved_card,
        renew_on=max(renew_on, now),
    )
    return True


def announce_before_charge(
    service: Service, price: RenewalPrice, now: datetime, cfg: RenewalSettings
) -> bool:
    """Before charging `price`: may the charge go ahead now?

    Already the last amount announced: yes. Otherwise the notice with the new amount is queued
    (it leaves with the attempt's own commit, before the bank is asked) and the charge goes
    ahead if nothing had been announced for the period (no reminder went out) or only the card
    changed; a different amount or frequency than announced waits for the next day, except on
    the expiry day itself.
    """
    last, new = last_announcement(service), announcement_of(service, price)
    if last == new:
        return True
    _announce(service, price, now, cfg)
    if last is None or (last.total_cents, last.years) == (new.total_cents, new.years):
        return True
    return rome_date(now) >= rome_date(service.expires_at)


def next_day(now: datetime) -> datetime:
    """The first instant of tomorrow in Italy: when a charge held for a new notice is due."""
    return rome_midnight(rome_date(now) + timedelta(days=1))


def batch_verdict(row, total_cents: int, years: int) -> str:
    """For a claimed row of the engine's batch path, priced: "charge" (announced as it is),
    "announce" (never announced for the period: queue the notice with the batch's record, before
    the bank is asked, and charge) or "no" (announced otherwise: the per-row path decides)."""
    if row.announced_period is None or as_utc(row.announced_period) != as_utc(row.expires_at):
        return "announce"
    last = (row.announced_cents, row.announced_years, row.announced_card_id)
    return "charge" if last == (total_cents, years, row.card_id) else "no"


def announce_jobs(jobs, now: datetime, cfg: RenewalSettings) -> None:
    """The notices of the batch's renewals never announced (flushed; the record commits)."""
    for job in jobs:
        service = db.session.get(Service, job.service_id)
        price = RenewalPrice(job.years, job.net_cents, job.vat_cents, job.split_payment)
        _announce(service, price, now, cfg)
