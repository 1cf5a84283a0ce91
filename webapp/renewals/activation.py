"""A paid order starts services (a purchase) or extends one (a renewal).

This is renewals' answer to payments' `order_paid`: the receiver runs inside the paying
transaction, so the payment, the order and the services are committed together or not at all.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import or_, select, update

from webapp.clock import add_years
from webapp.errors import InvalidTransition
from webapp.extensions import db
from webapp.payments.events import order_paid, order_settling
from webapp.payments.models import Payment, SavedCard
from webapp.renewals.events import service_renewed, services_activated
from webapp.renewals.manual import apply_renewal_lines
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.services import RENEWAL_TRANSITIONS
from webapp.shop.order_models import Order, OrderKind, OrderLine
from webapp.statemachine import transition

log = logging.getLogger(__name__)


@order_settling.connect
def lock_services(order: Order, **_) -> None:
    """Lock, in id order, the services whose periods this order's money pays (those it started,
    those its renewal lines or its renewal extend): first, before the order, the payment and
    the invoice counter, the order the batch settlement takes (payments' events)."""
    lines = select(OrderLine.id).where(OrderLine.order_id == order.id)
    ours = or_(
        Service.order_line_id.in_(lines),
        Service.id.in_(
            select(OrderLine.service_id).where(
                OrderLine.order_id == order.id, OrderLine.service_id.is_not(None)
            )
        ),
        Service.id.in_(select(Renewal.service_id).where(Renewal.order_id == order.id)),
    )
    with db.session.no_autoflush:  # the lock first: this transaction's own writes come after
        db.session.execute(
            select(Service.id).where(ours).order_by(Service.id).with_for_update()
        ).all()


@order_paid.connect
def on_order_paid(
    order: Order,
    *,
    payment: Payment,
    card: SavedCard | None,
    now: datetime,
    batch_settled: bool = False,
    **_,
) -> None:
    """Start the services of a purchase, or extend the service of a renewal."""
    if batch_settled:
        return  # the renewal engine's batch settlement extended the service (set-based) already
    if order.kind is OrderKind.RENEWAL:
        renewal_paid(order, payment, now)
        return
    services = activate_order(order, card, now)
    apply_renewal_lines(order, payment, now)  # renewal lines (by hand) extend their services
    services_activated.send(order, payment=payment, card=card, services=services, now=now)


def activate_order(order: Order, card: SavedCard | None, now: datetime) -> list[Service]:
    """One service per purchased line, expiring after the years bought; renewals on the card."""
    if order.kind is not OrderKind.PURCHASE:
        return []
    services = []
    for line in order.lines:
        if line.service_id is not None:
            continue  # a renewal line extends its service (renewals.manual)
        renews = line.auto_renew and card is not None
        service = Service(
            customer_id=order.customer_id,
            product_id=line.product_id,
            order_line_id=line.id,
            started_at=now,
            expires_at=add_years(now, line.years),
            auto_renew=renews,
            frequency_years=line.years,
            saved_card_id=card.id if renews else None,
        )
        db.session.add(service)
        services.append(service)
    db.session.flush()
    return services


def renewal_paid(order: Order, payment: Payment, now: datetime) -> None:
    """A renewal order was paid: extend the service from the expiry of the renewed period."""
    renewal = db.session.scalar(select(Renewal).where(Renewal.order_id == order.id))
    if renewal is None:
        raise InvalidTransition("Rinnovo non trovato per questo ordine.")
    service = renewal.service
    old = renewal.period_expires_at
    new = add_years(old, order.lines[0].years)
    # Guarded on the old expiry: a period is extended once, whoever settles the payment.
    moved = db.session.execute(
        update(Service)
        .where(Service.id == service.id, Service.expires_at == old)
        .values(expires_at=new, status=ServiceStatus.ACTIVE)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        log.error("renewal %s paid, service %s had moved on from %s", renewal.id, service.id, old)
    db.session.refresh(service)
    transition(
        renewal,
        RenewalStatus.SUCCEEDED,
        RENEWAL_TRANSITIONS,
        "Rinnovo già concluso.",
        completed_at=now,
        next_attempt_at=None,
        failure_code=None,
        failure_reason=None,
    )
    service_renewed.send(
        service,
        renewal=renewal,
        order=order,
        payment=payment,
        old_expiry=old,
        new_expiry=new,
        now=now,
    )
