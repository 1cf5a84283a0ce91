"""Expiry: the expiry passed unpaid, so the service expires and auto-renewal stops."""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp.clock import rome_date, rome_midnight
from webapp.errors import InvalidTransition
from webapp.extensions import db
from webapp.payments.charges import execute_card_charge
from webapp.renewals.charging import after_charge, in_flight_charge
from webapp.renewals.claims import claim, release, snapshot_ids, unclaim
from webapp.renewals.lifecycle import life_of
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.outcomes import RenewalOutcome
from webapp.renewals.services import RENEWAL_TRANSITIONS, RenewalSettings, queue_customer_email
from webapp.renewals.timeline import STATE, record_event
from webapp.shop.order_models import OrderStatus
from webapp.shop.orders import cancel_order
from webapp.statemachine import transition
from webapp.transaction import commit, rollback

log = logging.getLogger(__name__)


def expired_services(now: datetime) -> array:
    """Active services whose expiry day is over (a service is valid through its expiry day)."""
    return snapshot_ids(
        select(Service.id)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            Service.expires_at < rome_midnight(rome_date(now)),
        )
        .order_by(Service.expires_at, Service.id)
    )


def expire(
    service_id: int,
    now: datetime,
    worker: str,
    cfg: RenewalSettings,
    lease_clock: Callable[[], datetime],
) -> RenewalOutcome:
    """The expiry passed unpaid: the service expires and auto-renewal stops, with an e-mail."""
    service = db.session.get(Service, service_id)
    period = service.expires_at
    renewal = db.session.scalar(
        select(Renewal).where(Renewal.service_id == service.id, Renewal.period_expires_at == period)
    )
    renewal_id = renewal.id if renewal is not None else None
    if renewal_id is not None and not claim(renewal_id, worker, lease_clock()):
        return RenewalOutcome.SKIPPED
    try:
        outcome = _expire_claimed(service, renewal, period, now, cfg)
        if renewal is not None:
            release(renewal)
        commit()
    except InvalidTransition as exc:
        rollback()
        log.warning("service %s changed under us: %s", service_id, exc.message)
        if renewal_id is not None:
            unclaim(renewal_id, worker)
        return RenewalOutcome.SKIPPED
    except Exception:
        rollback()
        log.exception("expiring service %s failed with an error", service_id)
        return RenewalOutcome.ERRORS
    return outcome


def _expire_claimed(
    service: Service, renewal: Renewal | None, period: datetime, now: datetime, cfg: RenewalSettings
) -> RenewalOutcome:
    if renewal is not None:
        payment = in_flight_charge(renewal)
        if payment is not None:
            # Paid or not? Ask before expiring; an unknown outcome keeps the service for now.
            execute_card_charge(payment, now, initiator="merchant")
            outcome = after_charge(renewal, payment, now, cfg)
            if outcome is not RenewalOutcome.FAILED:
                return outcome
        if renewal.status is RenewalStatus.SUCCEEDED:
            return RenewalOutcome.SKIPPED
        transition(
            renewal,
            RenewalStatus.ABANDONED,
            RENEWAL_TRANSITIONS,
            "Rinnovo già concluso.",
            next_attempt_at=None,
            completed_at=now,
        )
        order = renewal.order
        if order is not None and order.status is OrderStatus.PENDING_PAYMENT:
            cancel_order(order, now)
    was_renewing = service.auto_renew
    moved = db.session.execute(
        update(Service)
        .where(
            Service.id == service.id,
            Service.status == ServiceStatus.ACTIVE,
            Service.expires_at == period,
        )
        .values(status=ServiceStatus.EXPIRED, auto_renew=False)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise InvalidTransition("Servizio già rinnovato o scaduto.")
    db.session.refresh(service)
    _tell_expired(service, period, now, was_renewing, renewal)
    return RenewalOutcome.EXPIRED


def _tell_expired(
    service: Service, period: datetime, now: datetime, was_renewing: bool, renewal
) -> None:
    """The timeline's "Scaduto" and the e-mail ("Rinnova ora" while the grace window lasts)."""
    record_event(service.id, STATE, "Scaduto", now)
    life = life_of(service, rome_date(now))
    queue_customer_email(
        service,
        _("Servizio scaduto: %(name)s", name=service.product.name),
        "service_expired",
        dedupe_key=f"expired-{service.id}-{int(period.timestamp())}",
        expired_at=period,
        was_renewing=was_renewing,
        reason=renewal.failure_reason if renewal is not None else None,
        grace_ends=rome_midnight(life.grace_ends) if life.renewable and life.grace_ends else None,
    )
