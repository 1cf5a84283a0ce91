"""The test clock: a renewal pass as of any instant, or one customer's services moved in time.

A pass is `webapp.renewals.scheduler.run_pass`, the code the scheduler and
`flask renewals run --as-of` run. A pass as of a later day renews (or expires) every customer's
services due by then; on a staging shared by parallel tests, `move_services` is the way to make
only one customer's services due: their dates move `days` earlier, as if that many days had
passed for that customer alone, and a pass as of now then finds them due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from webapp.errors import InvalidTransition
from webapp.extensions import db
from webapp.renewals.models import Renewal, Service
from webapp.renewals.scheduler import PassReport, run_pass

MAX_DAYS = 3660
WORKER = "sandbox"


def run_clock_pass(now: datetime) -> PassReport:
    """One renewal pass as of `now` (it commits, service by service, like the scheduler)."""
    return run_pass(now, f"{WORKER}:{now.isoformat()}")


def move_services(customer_id: int, days: int, real_now: datetime) -> list[int]:
    """Move the customer's services (and their renewals) `days` earlier; flushes.

    Guard: a compare-and-set UPDATE per row on the dates it read, and none on a renewal a
    worker has claimed (`claimed_until` in the future): if a pass moved anything meanwhile,
    InvalidTransition, and the caller rolls back. Returns the ids of the services moved.
    """
    if not 1 <= days <= MAX_DAYS:
        raise InvalidTransition(_("Giorni: da 1 a %(max)d.", max=MAX_DAYS))
    shift = timedelta(days=days)
    services = db.session.scalars(
        select(Service).where(Service.customer_id == customer_id).order_by(Service.id)
    ).all()
    for service in services:
        _move_service(service, shift)
        for renewal in db.session.scalars(
            select(Renewal)
            .where(Renewal.service_id == service.id)
            .order_by(Renewal.period_expires_at)
        ).all():
            _move_renewal(renewal, shift, real_now)
    db.session.expire_all()
    return [service.id for service in services]


def _move_service(service: Service, shift: timedelta) -> None:
    moved = db.session.execute(
        update(Service)
        .where(Service.id == service.id, Service.expires_at == service.expires_at)
        .values(expires_at=service.expires_at - shift, started_at=service.started_at - shift)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise InvalidTransition(_("Il servizio è cambiato nel frattempo: riprova."))


def _move_renewal(renewal: Renewal, shift: timedelta, real_now: datetime) -> None:
    values: dict = {"period_expires_at": renewal.period_expires_at - shift}
    for name in ("next_attempt_at", "last_attempt_at"):
        if getattr(renewal, name) is not None:
            values[name] = getattr(renewal, name) - shift
    moved = db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == renewal.id,
            Renewal.period_expires_at == renewal.period_expires_at,
            or_(Renewal.claimed_until.is_(None), Renewal.claimed_until < real_now),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise InvalidTransition(_("Un rinnovo del servizio è in lavorazione: riprova."))
