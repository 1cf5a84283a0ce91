"""Renewal by hand ("Rinnova", "Rinnova ora"): a renewal line in the cart, paid through the same
checkout and payment paths, extends the same service from its current expiry.

Never twice. The guard is the `renewal` row's unique key (service, period): the period is the
expiry being renewed. Whoever pays a period first (the automatic pass, a renewal line, another
tab) takes that row (an INSERT … ON CONFLICT DO NOTHING, or a compare-and-set on an open row
that no pass holds and no charge is in flight for), then extends the service with a
compare-and-set on its expiry. A second payment for the same period is refused before the bank
(`order_payable`), or, if it reached the bank anyway, its share is refunded at once.

Callers: the customer area (`add_to_cart`), payments' `order_payable` and renewals' activation
(`apply_renewal_lines`, inside the paying transaction).
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from webapp.clock import format_day, rome_date
from webapp.errors import DomainError, InvalidChoice, InvalidTransition
from webapp.extensions import db
from webapp.payments import refunds
from webapp.payments.events import order_payable
from webapp.payments.models import Payment, RefundKind
from webapp.renewals.claims import CHARGE_IN_FLIGHT, unclaimed
from webapp.renewals.lifecycle import life_of
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.timeline import RENEWAL, record_event
from webapp.shop.cart import add_renewal_line
from webapp.shop.models import Cart, CartLine
from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus
from webapp.shop.orders import cancel_order

log = logging.getLogger(__name__)

#: Renewal rows a renewal by hand may take: open ones, and one the pass gave up at expiry.
TAKEABLE = (RenewalStatus.PENDING, RenewalStatus.FAILED, RenewalStatus.ABANDONED)


def renewal_years(service) -> list[int]:
    """The years a renewal by hand may buy: the seed's rule (1-5, promotions 1-2)."""
    return service.product.allowed_years


def check_renewable(service: Service, today: date) -> None:
    """Refuse, with the reason, a service that cannot be renewed by hand today."""
    life = life_of(service, today)
    if not life.renewable:
        raise InvalidChoice(life.reason)


def add_to_cart(cart: Cart, service: Service, years: int, now: datetime) -> CartLine:
    """Put the renewal of `service` for `years` in the cart, from its current expiry; flushed."""
    check_renewable(service, rome_date(now))
    if years not in renewal_years(service):
        years = service.frequency_years if service.frequency_years in renewal_years(service) else 1
    return add_renewal_line(cart, service.product, service.id, service.expires_at, years)


# --- before the bank -------------------------------------------------------------------------


def _renewal_lines(order: Order) -> list[OrderLine]:
    if order.kind is not OrderKind.PURCHASE:
        return []
    return [line for line in order.lines if line.service_id is not None and line.renews_from]


def period_state(service_id: int, period: datetime) -> str | None:
    """ "renewed" (another payment renewed this period), "charging" (the automatic pass is
    charging it now) or None (free to renew)."""
    renewed, charging = db.session.execute(
        select(Renewal.status == RenewalStatus.SUCCEEDED, CHARGE_IN_FLIGHT).where(
            Renewal.service_id == service_id, Renewal.period_expires_at == period
        )
    ).first() or (False, False)
    return "renewed" if renewed else "charging" if charging else None


@order_payable.connect
def refuse_renewed_periods(order: Order, *, today: date, **kwargs) -> None:
    """Before the bank: a renewal line whose period is no longer to renew refuses the payment."""
    for line in _renewal_lines(order):
        service = db.session.get(Service, line.service_id)
        state = period_state(service.id, line.renews_from)
        if service.expires_at != line.renews_from or state == "renewed":
            raise InvalidTransition(
                _(
                    "%(name)s è già stato rinnovato: ora scade il %(day)s. Questo ordine non "
                    "viene addebitato; per un altro periodo usa di nuovo «Rinnova».",
                    name=line.product_name,
                    day=format_day(service.expires_at),
                )
            )
        if state == "charging":
            raise InvalidTransition(
                _(
                    "Il rinnovo automatico di %(name)s è in corso presso la banca: "
                    "attendi l'esito prima di pagare questo ordine.",
                    name=line.product_name,
                )
            )
        check_renewable(service, today)


# --- paid: extend, once ------------------------------------------------------------------------


def apply_renewal_lines(order: Order, payment: Payment, now: datetime) -> list[Service]:
    """The order is paid: each renewal line extends its service, unless its period was taken
    (then its share of the payment is refunded at once). Returns the services extended."""
    extended = []
    for line in _renewal_lines(order):
        service = db.session.get(Service, line.service_id)
        db.session.refresh(service)  # its status now: the compare-and-sets below check it
        was = service.status
        won = _extend(line, service, was)
        if won and not _take_period(line, service, now):
            _restore(line, service, was)  # the period was taken by another payment
            won = False
        if won:
            record_event(
                service.id,
                RENEWAL,
                f"Rinnovo manuale pagato (ordine {order.number}): scadenza dal "
                f"{format_day(line.renews_from)} al {format_day(line.renews_to)}",
                now,
            )
            extended.append(service)
        else:
            _refund_line(order, line, payment, service, now)
    return extended


def _take_period(line: OrderLine, service: Service, now: datetime) -> bool:
    """Take the (service, period) renewal row for this line: the guard."""
    values = dict(
        status=RenewalStatus.SUCCEEDED,
        manual=True,
        order_line_id=line.id,
        completed_at=now,
        next_attempt_at=None,
        failure_code=None,
        failure_reason=None,
    )
    if _insert_period(service.id, line.renews_from, now, values):
        return True
    # The automatic pass opened this period: take it only if no pass holds it and no charge of
    # it is in flight (that charge would then extend the period: this payment is refunded).
    open_row = db.session.scalar(
        select(Renewal).where(
            Renewal.service_id == service.id, Renewal.period_expires_at == line.renews_from
        )
    )
    if open_row is None:  # cannot happen once the conflicting insert committed; be safe
        return False
    taken = db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == open_row.id,
            Renewal.status.in_(TAKEABLE),
            unclaimed(now),
            ~CHARGE_IN_FLIGHT,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken == 1 and open_row.order is not None:
        db.session.refresh(open_row.order)
        if open_row.order.status is OrderStatus.PENDING_PAYMENT:
            cancel_order(open_row.order, now)  # the automatic attempt's unpaid order
    return taken == 1


def _insert_period(service_id: int, period: datetime, now: datetime, values: dict) -> bool:
    """The period's renewal row, paid by hand, unless one exists: INSERT … ON CONFLICT DO
    NOTHING on the unique (service, period), so of two payers at once one inserts."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = db.session.execute(
        dialect.insert(Renewal.__table__)
        .values(service_id=service_id, period_expires_at=period, attempts=0, created_at=now)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["service_id", "period_expires_at"])
        .execution_options(preserve_rowcount=True)
    ).rowcount
    return inserted == 1


def _extend(line: OrderLine, service: Service, was: ServiceStatus) -> bool:
    """The service runs to the line's new expiry: a compare-and-set on the renewed expiry and
    the status read (a service ceased or cancelled meanwhile is not revived: refunded)."""
    if was not in (ServiceStatus.ACTIVE, ServiceStatus.EXPIRED):
        return False
    moved = db.session.execute(
        update(Service)
        .where(
            Service.id == service.id,
            Service.expires_at == line.renews_from,
            Service.status == was,
        )
        .values(expires_at=line.renews_to, status=ServiceStatus.ACTIVE)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(service)
    return moved == 1


def _restore(line: OrderLine, service: Service, was: ServiceStatus) -> None:
    """Undo this transaction's extension (its row lock kept anyone else from seeing it)."""
    db.session.execute(
        update(Service)
        .where(Service.id == service.id, Service.expires_at == line.renews_to)
        .values(expires_at=line.renews_from, status=was)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(service)


def _line_share(order: Order, line: OrderLine, payment: Payment) -> int:
    """What the customer paid for this line: its share of the payment (all of it when alone)."""
    if order.net_cents <= 0:
        return 0
    return min(payment.amount_cents * line.net_cents // order.net_cents, payment.amount_cents)


def _refund_line(
    order: Order, line: OrderLine, payment: Payment, service: Service, now: datetime
) -> None:
    """The period was renewed by another payment: give this line's money back at once."""
    amount = _line_share(order, line, payment)
    log.warning("renewal line %s paid for a period already renewed: refunding", line.id)
    detail = f"Rinnovo manuale (ordine {order.number}) non applicato: periodo già rinnovato"
    if amount > 0:
        try:
            refunds.refund_payment(
                payment,
                amount,
                kind=RefundKind.DUPLICATE,
                reason=_(
                    "Rinnovo di %(name)s già effettuato per lo stesso periodo: rimborso.",
                    name=line.product_name,
                ),
                now=now,
                idempotency_key=f"renewal-line-{line.id}",
            )
            detail += ", rimborsato"
        except DomainError as exc:  # a bank transfer is given back by an operator
            detail += f", rimborso a cura di un operatore ({exc.message})"
    record_event(service.id, RENEWAL, detail, now)
