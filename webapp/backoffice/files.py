"""What the back office's order page and customer page read: an order's file and timeline
(payments, refunds, e-mails, renewals, the audit log), a customer's orders and services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload, selectinload

from webapp.backoffice.audit import entries_for
from webapp.backoffice.models import AuditEntry
from webapp.clock import as_utc
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.invoicing.models import Invoice
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundStatus,
    SavedCard,
)
from webapp.renewals.models import Renewal, Service
from webapp.shop.models import BillingProfile, Customer
from webapp.shop.order_models import Order


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
    invoices: list[Invoice] = field(default_factory=list)  # invoices and credit notes

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
    file.invoices = documents(Invoice.order_id == order.id)
    return file


def documents(where) -> list[Invoice]:
    """Invoices and credit notes matching `where`, in the order they were issued."""
    return list(db.session.scalars(select(Invoice).where(where).order_by(Invoice.id)))


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


@dataclass
class CustomerFile:
    customer: Customer
    orders: list[Order]
    services: list[Service]
    billing: BillingProfile | None = None
    cards: list[SavedCard] = field(default_factory=list)  # saved and not removed
    invoices: list[Invoice] = field(default_factory=list)


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
    cards = db.session.scalars(
        select(SavedCard)
        .where(SavedCard.customer_id == customer.id, SavedCard.removed_at.is_(None))
        .order_by(SavedCard.id)
    ).all()
    return CustomerFile(
        customer,
        list(orders),
        list(services),
        billing=db.session.scalar(
            select(BillingProfile).where(BillingProfile.customer_id == customer.id)
        ),
        cards=list(cards),
        invoices=documents(Invoice.customer_id == customer.id)[::-1],
    )
