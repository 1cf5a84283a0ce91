"""The renewal batch's second stage: every attempt on record before the bank is asked.

record - the orders, their lines and PENDING payments (idempotency key
`renewal-<id>-<attempt>`) in multi-row INSERTs and the renewals' attempt counters in one
UPDATE (guarded by `claimed_by = worker`), one commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, text

from webapp.bulk import insert_unnest, next_ids
from webapp.extensions import db
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals.batch_claim import Job
from webapp.renewals.models import Renewal, RenewalStatus
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus
from webapp.transaction import commit, rollback


def record(jobs: list[Job], now: datetime, worker: str) -> list[Job]:
    """Orders, lines and PENDING payments in multi-row INSERTs; commits before the bank is asked."""
    order_ids = next_ids(Order.__table__, len(jobs))
    payment_ids = next_ids(Payment.__table__, len(jobs))
    _insert_orders(jobs, order_ids, now)
    _insert_payments(jobs, order_ids, payment_ids, now)
    _mark_attempts(jobs, order_ids, now, worker)
    return [
        _with_ids(j, oid, pid, f"{now.year}-{oid:06d}")  # Order.number
        for j, oid, pid in zip(jobs, order_ids, payment_ids, strict=True)
    ]


def _insert_orders(jobs: list[Job], order_ids: list[int], now: datetime) -> None:
    """The renewal orders and their one line each: today's price, no discount."""
    n = len(jobs)
    nets = [j.net_cents for j in jobs]
    insert_unnest(
        Order.__table__,
        dict(
            id=("integer", order_ids),
            customer_id=("integer", [j.customer_id for j in jobs]),
            kind=("varchar", [OrderKind.RENEWAL.value] * n),
            status=("varchar", [OrderStatus.PENDING_PAYMENT.value] * n),
            payment_method=("varchar", [PaymentMethod.CARD.value] * n),
            subtotal_cents=("integer", nets),
            discount_cents=("integer", [0] * n),
            net_cents=("integer", nets),
            vat_cents=("integer", [j.vat_cents for j in jobs]),
            total_cents=("integer", [j.total_cents for j in jobs]),
            split_payment=("boolean", [j.split_payment for j in jobs]),
            currency=("varchar", ["EUR"] * n),
            created_at=("timestamptz", [now] * n),
        ),
    )
    insert_unnest(
        OrderLine.__table__,
        dict(
            order_id=("integer", order_ids),
            product_id=("integer", [j.product_id for j in jobs]),
            product_name=("varchar", [j.product_name for j in jobs]),
            kind=("varchar", [str(j.product_kind.value) for j in jobs]),
            years=("integer", [j.years for j in jobs]),
            yearly_price_cents=("integer", [j.yearly_price_cents for j in jobs]),
            list_cents=("integer", nets),
            discount_cents=("integer", [0] * n),
            net_cents=("integer", nets),
            auto_renew=("boolean", [True] * n),
            service_id=("integer", [j.service_id for j in jobs]),
        ),
    )


def _insert_payments(
    jobs: list[Job], order_ids: list[int], payment_ids: list[int], now: datetime
) -> None:
    """One PENDING payment per order, with the idempotency key the bank will be asked with."""
    n = len(jobs)
    insert_unnest(
        Payment.__table__,
        dict(
            id=("integer", payment_ids),
            order_id=("integer", order_ids),
            channel=("varchar", [PaymentChannel.RENEWAL.value] * n),
            status=("varchar", [PaymentStatus.PENDING.value] * n),
            amount_cents=("integer", [j.total_cents for j in jobs]),
            currency=("varchar", ["EUR"] * n),
            idempotency_key=("varchar", [j.key for j in jobs]),
            refunded_cents=("integer", [0] * n),
            saved_card_id=("integer", [j.card_id for j in jobs]),
            created_at=("timestamptz", [now] * n),
        ),
    )


def _mark_attempts(jobs: list[Job], order_ids: list[int], now: datetime, worker: str) -> None:
    """Count the attempts on the renewals and commit: all is on record before the bank."""
    # Guard: only rows this worker still holds (a lease that ran out is another's now).
    counted = db.session.execute(
        text(
            "UPDATE renewal SET attempts = v.attempt, last_attempt_at = :now, "
            "status = :pending, order_id = v.order_id "
            "FROM unnest(CAST(:ids AS integer[]), CAST(:attempts AS integer[]), "
            "CAST(:order_ids AS integer[])) AS v(id, attempt, order_id) "
            "WHERE renewal.id = v.id AND renewal.claimed_by = :worker "
            "AND renewal.attempts = v.attempt - 1"
        ).bindparams(bindparam("now", type_=Renewal.__table__.c.last_attempt_at.type)),
        dict(
            now=now,
            pending=RenewalStatus.PENDING.value,
            ids=[j.renewal_id for j in jobs],
            attempts=[j.attempt for j in jobs],
            order_ids=list(order_ids),
            worker=worker,
        ),
    ).rowcount
    if counted != len(jobs):
        rollback()
        raise LostClaim(f"{len(jobs) - counted} renewals of the batch are no longer ours")
    commit()  # every attempt is on record before the bank is asked


class LostClaim(RuntimeError):
    """A claim ran out while recording (the batch took longer than RENEWAL_CLAIM_SECONDS)."""


def _with_ids(job: Job, order_id: int, payment_id: int, number: str) -> Job:
    return Job(
        **{**job.__dict__, "order_id": order_id, "payment_id": payment_id, "order_number": number}
    )
