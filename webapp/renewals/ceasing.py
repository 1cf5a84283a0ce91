"""After the expiry (issue 28): the grace window ("Scaduto", still renewable) and its end.

Each pass, for the services that expired: a notice CEASE_NOTICE_DAYS (7) days before the window
ends ("Rinnova ora"), and on the day after it the service becomes "Cessato" (no longer
renewable), with an e-mail. Guards: the notice's outbox dedupe key per service and period; the
move to CEASED is a compare-and-set on the status and the expiry read (a renewal paid meanwhile
moved the expiry, so it wins).
"""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from webapp.clock import rome_date, rome_midnight
from webapp.extensions import db
from webapp.renewals.claims import snapshot_ids
from webapp.renewals.lifecycle import LifeState, life_of
from webapp.renewals.models import Service, ServiceStatus
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import queue_customer_email
from webapp.renewals.timeline import STATE, record_event
from webapp.transaction import commit, rollback


def notice_days() -> int:
    return current_app.config.get("CEASE_NOTICE_DAYS", 7)


def after_expiry(now: datetime, report: RenewalReport) -> None:
    """Notices before the grace window ends, and "Cessato" after it, for expired services."""
    today = rome_date(now)
    service_ids = snapshot_ids(
        select(Service.id)
        .where(Service.status == ServiceStatus.EXPIRED, Service.expires_at < rome_midnight(today))
        .order_by(Service.expires_at, Service.id)
    )
    for service_id in service_ids:
        service = db.session.get(Service, service_id)
        try:
            _step(service, today, now, report)
            commit()
        except IntegrityError:
            rollback()  # a twin pass sent the notice first


def _step(service: Service, today: date, now: datetime, report: RenewalReport) -> None:
    life = life_of(service, today)
    if life.state is LifeState.CEASED:
        report.ceased += cease(service, life.grace_ends or life.expiry_day, now)
    elif life.grace_ends is not None and (life.grace_ends - today).days == notice_days():
        sent = queue_customer_email(
            service,
            _("Ultimi giorni per rinnovare %(name)s", name=service.product.name),
            "service_ceasing",
            dedupe_key=f"cease-notice-{service.id}-{int(service.expires_at.timestamp())}",
            ceased=False,
            grace_ends=rome_midnight(life.grace_ends),
        )
        report.due_reminders += sent is not None


def cease(service: Service, last_day: date, now: datetime) -> bool:
    """EXPIRED -> CEASED, once (compare-and-set), with the e-mail and the timeline entry."""
    moved = db.session.execute(
        update(Service)
        .where(
            Service.id == service.id,
            Service.status == ServiceStatus.EXPIRED,
            Service.expires_at == service.expires_at,
        )
        .values(status=ServiceStatus.CEASED, auto_renew=False)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return False
    db.session.refresh(service)
    record_event(service.id, STATE, "Cessato: finito il periodo per rinnovarlo", now)
    queue_customer_email(
        service,
        _("Servizio cessato: %(name)s", name=service.product.name),
        "service_ceasing",
        dedupe_key=f"ceased-{service.id}-{int(service.expires_at.timestamp())}",
        ceased=True,
        grace_ends=rome_midnight(last_day),
    )
    return True
