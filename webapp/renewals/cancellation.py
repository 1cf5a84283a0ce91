"""A payment refunded in full cancels what it paid for: renewals' answer to `payment_refunded`.

Runs inside the refunding transaction (the caller commits). Only the payment that paid the order
counts: a duplicate capture refunded in full leaves the order's services as they are.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import or_, select, update

from webapp.extensions import db
from webapp.payments.events import payment_refunded
from webapp.payments.models import Payment, PaymentStatus, Refund
from webapp.renewals.models import Renewal, Service, ServiceStatus
from webapp.shop.models import Order, OrderKind

log = logging.getLogger(__name__)


@payment_refunded.connect
def on_payment_refunded(refund: Refund, *, payment: Payment, now: datetime, **_) -> None:
    """When the paying payment of an order is refunded in full, cancel the order's services."""
    if payment.status is not PaymentStatus.SUCCEEDED:
        return  # a duplicate (or anything else) never started services
    if payment.refunded_cents < payment.amount_cents:
        return  # a partial refund: the services go on
    cancel_order_services(payment.order, now)


def cancel_order_services(order: Order, now: datetime) -> list[Service]:
    """Cancel the services a purchase started (or a renewal extended): auto-renewal off."""
    line_ids = [line.id for line in order.lines]
    renewed = [line.service_id for line in order.lines if line.service_id is not None]
    if order.kind is not OrderKind.RENEWAL and renewed:
        # A renewal line by hand counts only if it took its period (a refunded twin did not).
        renewed = list(
            db.session.scalars(
                select(Renewal.service_id).where(Renewal.order_line_id.in_(line_ids))
            )
        )
    services = list(
        db.session.scalars(
            select(Service).where(
                or_(Service.order_line_id.in_(line_ids), Service.id.in_(renewed)),
                Service.status != ServiceStatus.CANCELLED,
            )
        )
    )
    for service in services:
        # Guarded on the status read: a twin refund cancels once.
        db.session.execute(
            update(Service)
            .where(Service.id == service.id, Service.status == service.status)
            .values(status=ServiceStatus.CANCELLED, auto_renew=False, cancelled_at=now)
            .execution_options(synchronize_session="fetch")
        )
        log.info("service %s cancelled: order %s refunded in full", service.id, order.id)
    db.session.flush()
    return services
