"""What the back office reads: search, the order timeline, the dashboard and the work queues."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from webapp.backoffice.audit import entries_for
from webapp.backoffice.forms import start_of_day
from webapp.backoffice.models import AuditEntry
from webapp.clock import as_utc, rome_date
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundStatus,
    SavedCard,
)
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.renewals.services import renewal_price, settings
from webapp.shop.models import Customer, Product
from webapp.shop.order_models import Order, OrderStatus

PAGE_SIZE = 20
MAX_PAGE = 100_000  # far beyond any list here; keeps OFFSET inside a 64-bit integer
STUCK_AFTER = timedelta(minutes=30)
KINDS = {
    "clienti": _l("Clienti"),
    "ordini": _l("Ordini"),
    "pagamenti": _l("Pagamenti"),
    "servizi": _l("Servizi"),
}
ORDER_NUMBER = re.compile(r"^(?:\d{4}-)?0*(\d{1,10})$")


# --- search ----------------------------------------------------------------------------------


@dataclass
class Page:
    kind: str
    items: list[Any]
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def _number(q: str) -> int | None:
    """An order/payment/service number typed as 42, 000042 or 2026-000042."""
    found = ORDER_NUMBER.match(q)
    return int(found.group(1)) if found and int(found.group(1)) < 2**31 else None


def _customer_match(q: str):
    like = f"%{q.lower()}%"
    return or_(
        func.lower(Customer.name).like(like),
        func.lower(Customer.email).like(like),
        func.upper(Customer.tax_code) == q.upper(),
    )


def _is(column, value) -> ColumnElement[bool] | None:
    """`column == value`, or nothing to match when the query holds no such value."""
    return None if value is None else column == value


def _any(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    return or_(*(cond for cond in conditions if cond is not None))


def _customers(q: str, number: int | None, last4: str | None) -> Select:
    return (
        select(Customer)
        .where(_any(_customer_match(q), _is(Customer.id, number)))
        .order_by(Customer.id.desc())
    )


def _orders(q: str, number: int | None, last4: str | None) -> Select:
    return (
        select(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .where(_any(_customer_match(q), _is(Order.id, number)))
        .order_by(Order.id.desc())
    )


def _payments(q: str, number: int | None, last4: str | None) -> Select:
    """By customer, bank reference, CRO/TRN, payment or order number, the card's last digits."""
    return (
        select(Payment)
        .join(Order, Order.id == Payment.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(SavedCard, SavedCard.id == Payment.saved_card_id)
        .where(
            _any(
                _customer_match(q),
                Payment.gateway_ref == q,
                Payment.transfer_reference == q.upper().replace(" ", ""),
                _is(Payment.id, number),
                _is(Payment.order_id, number),
                _is(SavedCard.last4, last4),
            )
        )
        .order_by(Payment.id.desc())
    )


def _services(q: str, number: int | None, last4: str | None) -> Select:
    """By customer, product name, service number, the renewal card's last digits."""
    return (
        select(Service)
        .join(Customer, Customer.id == Service.customer_id)
        .join(Product, Product.id == Service.product_id)
        .outerjoin(SavedCard, SavedCard.id == Service.saved_card_id)
        .where(
            _any(
                _customer_match(q),
                func.lower(Product.name).like(f"%{q.lower()}%"),
                _is(Service.id, number),
                _is(SavedCard.last4, last4),
            )
        )
        .order_by(Service.id.desc())
    )


QUERIES = {"clienti": _customers, "ordini": _orders, "pagamenti": _payments, "servizi": _services}


def _query(kind: str, q: str) -> Select:
    last4 = q if re.fullmatch(r"\d{4}", q) else None
    return QUERIES[kind](q, _number(q), last4)


def search(q: str, kind: str, page: int = 1) -> list[Page]:
    """Customers, orders, payments and services matching `q` (one kind, or the first page of
    each); by number, name, e-mail, codice fiscale / P.IVA, last four digits of the card."""
    q = (q or "").strip()[:100]
    if len(q) < 2:
        return []
    kinds = [kind] if kind in KINDS else list(KINDS)
    page = max(1, page) if kind in KINDS else 1
    pages = []
    for k in kinds:
        stmt = _query(k, q)
        total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
        items = db.session.scalars(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
        pages.append(Page(k, list(items), page, total))
    return pages


def customers_by_id(ids) -> dict[int, Customer]:
    ids = set(ids)
    if not ids:
        return {}
    return {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(ids)))}


# --- the order page --------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # order, payment, email, refund, renewal, service, staff
    title: str
    detail: str = ""
    obj: Any = None


@dataclass
class OrderFile:
    order: Order
    customer: Customer
    payments: list[Payment]
    refunds: list[Refund]
    emails: list[OutboxEmail]
    services: list[Service]
    renewals: list[Renewal]
    audit: list[AuditEntry]
    timeline: list[Event] = field(default_factory=list)

    @property
    def refundable(self) -> list[Payment]:
        return [
            p
            for p in self.payments
            if p.status in (PaymentStatus.SUCCEEDED, PaymentStatus.DUPLICATE)
            and p.channel is not PaymentChannel.BANK_TRANSFER
            and p.refunded_cents < p.amount_cents
        ]


PAYMENT_LABELS = {
    PaymentStatus.PENDING: _l("in corso"),
    PaymentStatus.SUCCEEDED: _l("riuscito"),
    PaymentStatus.DECLINED: _l("rifiutato"),
    PaymentStatus.FAILED: _l("non riuscito"),
    PaymentStatus.UNKNOWN: _l("Da verificare: esito sconosciuto, lo chiediamo alla banca"),
    PaymentStatus.DUPLICATE: _l("duplicato"),
    PaymentStatus.TO_VERIFY: _l("Da verificare"),
}
#: The refund states an operator must act on; the others show their value.
REFUND_LABELS = {
    RefundStatus.UNKNOWN: _l("Da verificare: esito sconosciuto, lo chiediamo alla banca"),
    RefundStatus.TO_VERIFY: _l("Da verificare"),
}
CHANNEL_LABELS = {
    PaymentChannel.HOSTED_PAGE: _l("pagina della banca"),
    PaymentChannel.SAVED_CARD: _l("carta salvata"),
    PaymentChannel.RENEWAL: _l("rinnovo automatico"),
    PaymentChannel.BANK_TRANSFER: _l("bonifico"),
}


def order_emails(order: Order, customer: Customer, renewal_ids: list[int], refund_ids: list[int]):
    """The outbox rows about this order: by dedupe key, or by its number in the subject."""
    keys = [f"order-paid-{order.id}"]
    prefixes = [f"renewal-paid-{r}" for r in renewal_ids]
    prefixes += [f"renewal-failed-{r}-" for r in renewal_ids]
    prefixes += [f"refund-{r}" for r in refund_ids]
    cond = or_(
        OutboxEmail.dedupe_key.in_(keys),
        OutboxEmail.subject.contains(order.number),
        *[OutboxEmail.dedupe_key.startswith(p) for p in prefixes],
    )
    return list(
        db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.to_addr == customer.email, cond)
            .order_by(OutboxEmail.id)
        )
    )


def order_file(order: Order) -> OrderFile:
    """Everything about an order, and its timeline oldest first."""
    customer = db.session.get(Customer, order.customer_id)
    payments = list(
        db.session.scalars(
            select(Payment)
            .where(Payment.order_id == order.id)
            .options(joinedload(Payment.saved_card))
            .order_by(Payment.id)
        )
    )
    refunds = list(
        db.session.scalars(
            select(Refund)
            .where(Refund.payment_id.in_([p.id for p in payments]))
            .order_by(Refund.id)
        )
    )
    line_ids = [line.id for line in order.lines]
    renewed = [line.service_id for line in order.lines if line.service_id]
    services = list(
        db.session.scalars(
            select(Service).where(or_(Service.order_line_id.in_(line_ids), Service.id.in_(renewed)))
        )
    )
    renewals = list(
        db.session.scalars(
            select(Renewal)
            .where(
                or_(
                    Renewal.order_id == order.id,
                    Renewal.service_id.in_([s.id for s in services]),
                )
            )
            .order_by(Renewal.id)
        )
    )
    emails = order_emails(order, customer, [r.id for r in renewals], [r.id for r in refunds])
    audit = (
        entries_for("order", [order.id])
        + entries_for("payment", [p.id for p in payments])
        + entries_for("refund", [r.id for r in refunds])
        + entries_for("service", [s.id for s in services])
        + entries_for("email", [e.id for e in emails])
    )
    file = OrderFile(order, customer, payments, refunds, emails, services, renewals, audit)
    file.timeline = _timeline(file)
    return file


def _timeline(f: OrderFile) -> list[Event]:
    """Every event of the order file, oldest first (same instant: in the order listed here)."""
    order = f.order
    events = [Event(order.created_at, "order", _("Ordine creato"), order.payment_method.label)]
    if order.immediate_start_at:
        events.append(Event(order.immediate_start_at, "order", _("Avvio immediato richiesto"), ""))
    events += map(_payment_event, f.payments)
    if order.paid_at:
        events.append(Event(order.paid_at, "order", _("Ordine pagato"), ""))
    events += map(_refund_event, f.refunds)
    events += map(_email_event, f.emails)
    events += map(_renewal_event, f.renewals)
    events += [
        Event(s.cancelled_at, "service", _("Servizio n. %(id)s annullato", id=s.id), "")
        for s in f.services
        if s.cancelled_at
    ]
    events += [
        Event(a.created_at, "staff", f"{a.staff_email}: {a.action}", a.reason, a) for a in f.audit
    ]
    return sorted(events, key=lambda e: as_utc(e.at))


def _payment_event(p: Payment) -> Event:
    card = f" · {p.saved_card.masked}" if p.saved_card else ""
    ref = f" · CRO/TRN {p.transfer_reference}" if p.transfer_reference else ""
    bank = (
        _(" · codice banca %(code)s: %(message)s", code=p.failure_code, message=p.failure_message)
        if p.failure_code
        else ""
    )
    return Event(
        p.completed_at or p.created_at,
        "payment",
        _(
            "Pagamento n. %(id)s (%(channel)s): %(status)s",
            id=p.id,
            channel=CHANNEL_LABELS[p.channel],
            status=PAYMENT_LABELS[p.status],
        ),
        f"{p.gateway_ref or ''}{card}{ref}{bank}",
        p,
    )


def _refund_event(r: Refund) -> Event:
    bank = f" · {r.failure_code}: {r.failure_message}" if r.failure_code else ""
    return Event(
        r.completed_at or r.created_at,
        "refund",
        _(
            "Rimborso %(kind)s (%(status)s)",
            kind=r.kind.value,
            status=REFUND_LABELS.get(r.status, r.status.value),
        ),
        f"{r.reason}{bank}",
        r,
    )


def _email_event(e: OutboxEmail) -> Event:
    state = _("inviata") if e.sent_at else _("non inviata (%(num)d tentativi)", num=e.attempts)
    return Event(
        e.sent_at or e.created_at, "email", _("E-mail: %(subject)s", subject=e.subject), state, e
    )


def _renewal_event(n: Renewal) -> Event:
    return Event(
        n.completed_at or n.last_attempt_at or n.created_at,
        "renewal",
        _("Rinnovo del servizio n. %(id)s: %(status)s", id=n.service_id, status=n.status.value),
        n.failure_reason or "",
        n,
    )


# --- dashboard -------------------------------------------------------------------------------


@dataclass
class Dashboard:
    today_orders: int
    today_revenue: int
    month_orders: int
    month_revenue: int
    due_count: int
    due_amount: int
    failed_renewals: int
    refunds_count: int
    refunds_amount: int
    days: list[tuple[date, int]]

    @property
    def max_day(self) -> int:
        return max([v for _, v in self.days] + [1])


def dashboard(now: datetime) -> Dashboard:
    """Today's and this month's paid orders, renewals due in 30 days, failures, refunds, chart."""
    today = rome_date(now)
    month_start = start_of_day(today.replace(day=1))
    due = _renewals_due(now, timedelta(days=30))
    return Dashboard(
        *_paid_since(start_of_day(today)),
        *_paid_since(month_start),
        len(due),
        sum(renewal_price(s).total_cents for s in due),
        db.session.scalar(
            select(func.count(Renewal.id)).where(Renewal.status == RenewalStatus.FAILED)
        ),
        *_refunded_since(month_start),
        _revenue_by_day(today, 30),
    )


def _paid_since(start: datetime) -> tuple[int, int]:
    """How many orders were paid since `start`, and their total."""
    count, total = db.session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.total_cents), 0)).where(
            Order.status == OrderStatus.PAID, Order.paid_at >= start
        )
    ).one()
    return count, total


def _revenue_by_day(today: date, days: int) -> list[tuple[date, int]]:
    """The paid orders' totals by Italian calendar day, the last `days` days up to today."""
    by_day: dict[date, int] = {today - timedelta(days=i): 0 for i in range(days)}
    for paid_at, total in db.session.execute(
        select(Order.paid_at, Order.total_cents).where(
            Order.status == OrderStatus.PAID,
            Order.paid_at >= start_of_day(today - timedelta(days=days - 1)),
        )
    ):
        by_day[rome_date(paid_at)] = by_day.get(rome_date(paid_at), 0) + total
    return sorted(by_day.items())


def _renewals_due(now: datetime, within: timedelta) -> list[Service]:
    """Active auto-renewing services whose renewal window opens within `within`."""
    window = settings().window
    due = db.session.scalars(
        select(Service).where(
            Service.status == ServiceStatus.ACTIVE,
            Service.auto_renew,
            Service.expires_at <= now + within + window,
            Service.expires_at > now,
        )
    ).all()
    return [s for s in due if s.renewable and s.expires_at - window <= now + within]


def _refunded_since(start: datetime) -> tuple[int, int]:
    """How many refunds succeeded since `start`, and their total."""
    count, total = db.session.execute(
        select(func.count(Refund.id), func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.status == RefundStatus.SUCCEEDED, Refund.created_at >= start
        )
    ).one()
    return count, total


# --- work queues -----------------------------------------------------------------------------


def payment_issues(now: datetime) -> tuple[list[Payment], list[Payment]]:
    """Duplicate captures not yet refunded in full, and payments stuck for over 30 minutes."""
    duplicates = db.session.scalars(
        select(Payment)
        .where(
            Payment.status == PaymentStatus.DUPLICATE,
            Payment.refunded_cents < Payment.amount_cents,
        )
        .options(joinedload(Payment.order))
        .order_by(Payment.id)
    ).all()
    stuck = db.session.scalars(
        select(Payment)
        .where(
            Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.UNKNOWN]),
            Payment.created_at < now - STUCK_AFTER,
            Payment.channel != PaymentChannel.BANK_TRANSFER,
        )
        .options(joinedload(Payment.order))
        .order_by(Payment.id)
    ).all()
    return list(duplicates), list(stuck)


def to_verify() -> tuple[list[Payment], list[Refund]]:
    """Payments and refunds whose bank answer did not match ("Da verificare"), oldest first."""
    payments = db.session.scalars(
        select(Payment)
        .where(Payment.status == PaymentStatus.TO_VERIFY)
        .options(joinedload(Payment.order))
        .order_by(Payment.id)
    ).all()
    refunds = db.session.scalars(
        select(Refund)
        .where(Refund.status == RefundStatus.TO_VERIFY)
        .options(joinedload(Refund.payment).joinedload(Payment.order))
        .order_by(Refund.id)
    ).all()
    return list(payments), list(refunds)


def dunning_queue() -> list[Renewal]:
    """Renewals whose last attempt failed, soonest next retry first."""
    return list(
        db.session.scalars(
            select(Renewal)
            .where(Renewal.status == RenewalStatus.FAILED)
            .options(
                joinedload(Renewal.service).joinedload(Service.saved_card),
                selectinload(Renewal.order),
            )
            .order_by(Renewal.next_attempt_at.is_(None), Renewal.next_attempt_at, Renewal.id)
        )
    )


def outbox_problems(now: datetime) -> list[OutboxEmail]:
    """E-mails not sent: failed at least once, or due for over five minutes."""
    return list(
        db.session.scalars(
            select(OutboxEmail)
            .where(
                OutboxEmail.sent_at.is_(None),
                or_(
                    OutboxEmail.attempts > 0,
                    OutboxEmail.next_attempt_at < now - timedelta(minutes=5),
                ),
            )
            .order_by(OutboxEmail.id)
            .limit(200)
        )
    )


def audit_log(page: int = 1) -> Page:
    total = db.session.scalar(select(func.count(AuditEntry.id)))
    items = db.session.scalars(
        select(AuditEntry)
        .order_by(AuditEntry.id.desc())
        .limit(PAGE_SIZE)
        .offset((max(page, 1) - 1) * PAGE_SIZE)
    ).all()
    return Page("registro", list(items), max(page, 1), total)


@dataclass
class CustomerFile:
    customer: Customer
    orders: list[Order]
    services: list[Service]


def customer_file(customer: Customer) -> CustomerFile:
    orders = db.session.scalars(
        select(Order)
        .where(Order.customer_id == customer.id)
        .options(selectinload(Order.lines))
        .order_by(Order.id.desc())
    ).all()
    services = db.session.scalars(
        select(Service)
        .where(Service.customer_id == customer.id)
        .options(joinedload(Service.saved_card))
        .order_by(Service.id.desc())
    ).all()
    return CustomerFile(customer, list(orders), list(services))
