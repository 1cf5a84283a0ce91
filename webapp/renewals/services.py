"""Services (subscriptions): created when an order is paid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from webapp.clock import add_years
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.renewals.models import Service
from webapp.shop.models import Order, OrderKind


def activate_order(order: Order, card: SavedCard | None, now: datetime) -> list[Service]:
    """One service per purchased line, expiring after the years bought; renewals on the card."""
    if order.kind is not OrderKind.PURCHASE:
        return []
    services = []
    for line in order.lines:
        service = Service(
            customer_id=order.customer_id,
            product_id=line.product_id,
            order_line_id=line.id,
            started_at=now,
            expires_at=add_years(now, line.years),
            auto_renew=line.auto_renew and card is not None,
            frequency_years=line.years,
            saved_card_id=card.id if line.auto_renew and card is not None else None,
        )
        db.session.add(service)
        services.append(service)
    db.session.flush()
    return services


def services_of_order(order: Order) -> list[Service]:
    line_ids = [line.id for line in order.lines]
    return list(db.session.scalars(select(Service).where(Service.order_line_id.in_(line_ids))))


def get_service(service_id: int, customer_id: int) -> Service:
    """A service of this customer; another customer's is simply not found."""
    service = db.session.get(Service, service_id)
    if service is None or service.customer_id != customer_id:
        raise NotFound("Servizio non trovato.")
    return service
