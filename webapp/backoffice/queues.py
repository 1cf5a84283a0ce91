"""What the back office's work queues read: payments stuck or to verify, dunning, e-mails not
sent, and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from webapp.backoffice.models import AuditEntry
from webapp.backoffice.search import PAGE_SIZE, Page
from webapp.extensions import db
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus, Refund, RefundStatus
from webapp.renewals.models import Renewal, RenewalStatus, Service

STUCK_AFTER = timedelta(minutes=30)


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
