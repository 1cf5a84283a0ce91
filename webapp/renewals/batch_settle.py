"""The renewal batch's last stage: apply the bank's answers, one commit.

settle - successes with set-based compare-and-set UPDATEs: order PENDING_PAYMENT -> PAID,
payment PENDING -> SUCCEEDED, service extended only from the expiry it had (once per
period), renewal open -> SUCCEEDED and released; the receipts through `services_renewed`
(outbox rows, ON CONFLICT DO NOTHING on the per-renewal dedupe key). Every other outcome
(declined, refused, no answer, a capture of an order already paid) is settled per row with
the per-row path's own functions, before the successes. Last, payments' `orders_paid`: the
invoices, numbered set-based (webapp.invoicing.batch).
"""

from __future__ import annotations

import logging
from datetime import datetime

from blinker import ANY
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import selectinload

from webapp.bulk import any_of
from webapp.clock import add_years
from webapp.extensions import db
from webapp.payments import verify
from webapp.payments.charges import apply_charge_result
from webapp.payments.events import PaidOrder, order_paid, orders_paid
from webapp.payments.flows import refund_held
from webapp.payments.gateway import ChargeResult, GatewayRefused, GatewayUnavailable
from webapp.payments.models import Payment, PaymentStatus
from webapp.renewals.activation import on_order_paid
from webapp.renewals.batch_charge import Answer
from webapp.renewals.batch_claim import Job
from webapp.renewals.charging import WITH_SERVICE_AND_CARD, after_charge
from webapp.renewals.events import RenewedService, services_renewed
from webapp.renewals.models import OPEN_RENEWAL_STATUSES, Renewal, RenewalStatus, ServiceStatus
from webapp.renewals.outcomes import RenewalOutcome
from webapp.renewals.services import RenewalSettings
from webapp.shop.order_models import Order, OrderStatus
from webapp.transaction import commit

log = logging.getLogger(__name__)


def _paid(job: Job, answer: Answer) -> bool:
    """A success that matches what was asked (anything else goes the per-row way: verify)."""
    return (
        isinstance(answer, ChargeResult)
        and answer.succeeded
        and not verify.charge_answer_differences(job.total_cents, "EUR", job.order_ref, answer)
    )


def crashed(answer: Answer) -> bool:
    """An error that is not the bank's: treated as a crash (the claim is left to run out)."""
    return isinstance(answer, Exception) and not isinstance(
        answer, GatewayUnavailable | GatewayRefused
    )


def settle(
    jobs: list[Job], answers: list[Answer], now: datetime, cfg: RenewalSettings
) -> list[RenewalOutcome]:
    """Apply the bank's answers: the rest per row, then the successes set-based; one commit.

    The successes come last: their invoices take the year's counter row lock (numbering is
    gap-free), held until this commit, so a twin worker's settlement waits the least.
    """
    outcomes: dict[int, RenewalOutcome] = {}
    paid = []
    held: set[int] = set()  # renewals whose answer did not match (verify.hold)
    for job, answer in zip(jobs, answers, strict=True):
        if _paid(job, answer):
            paid.append((job, answer))
        elif crashed(answer):
            log.error("renewal %s failed with an error: %r", job.renewal_id, answer)
            outcomes[job.renewal_id] = RenewalOutcome.ERRORS
        else:  # declined, refused, no answer
            outcomes[job.renewal_id] = _settle_one(job, answer, now, cfg, held)
    won = _settle_paid(paid, now) if paid else set()
    for job, answer in paid:
        # Not won: a capture of an order paid already (the per-row path records the duplicate).
        charged = job.renewal_id in won
        outcomes[job.renewal_id] = (
            RenewalOutcome.CHARGED if charged else _settle_one(job, answer, now, cfg, held)
        )
    commit()
    for job in jobs:  # money taken by an answer that did not match is refunded at once
        if job.renewal_id in held:
            refund_held(job.order_id, now)
    return [outcomes[j.renewal_id] for j in jobs]


def _settle_one(
    job: Job, answer: Answer, now: datetime, cfg: RenewalSettings, held: set[int]
) -> RenewalOutcome:
    """One outcome the batch does not settle set-based, with the per-row path's functions."""
    payment = db.session.get(Payment, job.payment_id)
    apply_charge_result(payment, answer, now)
    if payment.status is PaymentStatus.TO_VERIFY:
        held.add(job.renewal_id)
    renewal = db.session.get(Renewal, job.renewal_id, options=WITH_SERVICE_AND_CARD)
    return after_charge(renewal, payment, now, cfg)


def _settle_paid(paid: list[tuple[Job, ChargeResult]], now: datetime) -> set[int]:
    """Compare-and-set the paid jobs' rows; returns the renewal ids that this settlement won."""
    won_orders = _mark_orders_paid([j.order_id for j, _ in paid], now)
    paid = [(j, a) for j, a in paid if j.order_id in won_orders]  # the others: per row
    if not paid:
        return set()
    jobs = [j for j, _ in paid]
    _mark_payments_succeeded(paid, now)
    news = _extend_services(jobs)
    _close_renewals([j.renewal_id for j in jobs], now)
    services_renewed.send(
        "renewals",
        renewed=[_renewed(j, new) for j, new in zip(jobs, news, strict=True)],
        now=now,
    )
    _announce_orders_paid(jobs, now)
    return {j.renewal_id for j in jobs}


def _announce_orders_paid(jobs: list[Job], now: datetime) -> None:
    """`orders_paid` for the batch (invoicing numbers its invoices there: the last statements
    before the commit), and `order_paid` per order for receivers that take no batch."""
    if any(_wants_each_order(r) for r in order_paid.receivers_for(ANY)):
        orders = {
            o.id: o
            for o in db.session.scalars(
                select(Order)
                .where(any_of(Order.id, [j.order_id for j in jobs]))
                .options(selectinload(Order.lines))
            )
        }
        payments = {
            p.id: p
            for p in db.session.scalars(
                select(Payment)
                .where(any_of(Payment.id, [j.payment_id for j in jobs]))
                .options(selectinload(Payment.saved_card))
            )
        }
        for job in jobs:
            payment = payments[job.payment_id]
            order_paid.send(
                orders[job.order_id],
                payment=payment,
                card=payment.saved_card,
                now=now,
                batch_settled=True,
            )
    orders_paid.send("renewals", paid=[PaidOrder(j.order_id, j.payment_id) for j in jobs], now=now)


def _wants_each_order(receiver) -> bool:
    """Renewals' own receiver ignores a batch's orders (the batch extended the services)."""
    return receiver is not on_order_paid and not getattr(receiver, "handles_orders_paid", False)


def _renewed(job: Job, new_expiry: datetime) -> RenewedService:
    return RenewedService(
        service_id=job.service_id,
        renewal_id=job.renewal_id,
        order_id=job.order_id,
        payment_id=job.payment_id,
        customer_email=job.customer_email,
        product_name=job.product_name,
        old_expiry=job.period,
        new_expiry=new_expiry,
    )


def _mark_orders_paid(order_ids: list[int], now: datetime) -> set[int]:
    """PENDING_PAYMENT -> PAID, compare-and-set; the ids this settlement moved."""
    orders = Order.__table__
    return set(
        db.session.scalars(
            update(orders)
            .where(any_of(orders.c.id, order_ids), orders.c.status == OrderStatus.PENDING_PAYMENT)
            .values(status=OrderStatus.PAID, paid_at=now)
            .returning(orders.c.id)
        )
    )


def _mark_payments_succeeded(paid: list[tuple[Job, ChargeResult]], now: datetime) -> None:
    moved = db.session.execute(
        text(
            "UPDATE payment SET status = :succeeded, completed_at = :now, gateway_ref = v.ref "
            "FROM unnest(CAST(:ids AS integer[]), CAST(:refs AS varchar[])) AS v(id, ref) "
            "WHERE payment.id = v.id AND payment.status IN (:pending, :unknown)"
        ).bindparams(bindparam("now", type_=Payment.__table__.c.completed_at.type)),
        dict(
            succeeded=PaymentStatus.SUCCEEDED.value,
            pending=PaymentStatus.PENDING.value,
            unknown=PaymentStatus.UNKNOWN.value,
            now=now,
            ids=[j.payment_id for j, _ in paid],
            refs=[a.charge_id for _, a in paid],
        ),
    ).rowcount
    if moved != len(paid):
        raise RuntimeError("a renewal payment changed under the batch settlement")


def _extend_services(jobs: list[Job]) -> list[datetime]:
    """Each service from the expiry of the period renewed, only if it still has it: a period
    is extended once, whoever settles the payment (activation.renewal_paid). The new expiries."""
    news = [add_years(j.period, j.years) for j in jobs]
    ids = sorted(j.service_id for j in jobs)  # locked in id order, as every paying transaction
    db.session.execute(
        text(
            "SELECT id FROM service WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id FOR UPDATE"
        ),
        dict(ids=ids),
    ).all()
    extended = set(
        db.session.scalars(
            text(
                "UPDATE service SET expires_at = v.new, status = :active "
                "FROM unnest(CAST(:ids AS integer[]), CAST(:olds AS timestamptz[]), "
                "CAST(:news AS timestamptz[])) AS v(id, old, new) "
                "WHERE service.id = v.id AND service.expires_at = v.old RETURNING service.id"
            ),
            dict(
                active=ServiceStatus.ACTIVE.value,
                ids=[j.service_id for j in jobs],
                olds=[j.period for j in jobs],
                news=news,
            ),
        )
    )
    for job in jobs:
        if job.service_id not in extended:
            log.error(
                "renewal %s paid, service %s had moved on from %s",
                job.renewal_id,
                job.service_id,
                job.period,
            )
    return news


def _close_renewals(renewal_ids: list[int], now: datetime) -> None:
    renewals = Renewal.__table__
    done = db.session.execute(
        update(renewals)
        .where(any_of(renewals.c.id, renewal_ids), renewals.c.status.in_(OPEN_RENEWAL_STATUSES))
        .values(
            status=RenewalStatus.SUCCEEDED,
            completed_at=now,
            next_attempt_at=None,
            failure_code=None,
            failure_reason=None,
            claimed_until=None,
            claimed_by=None,
        )
    ).rowcount
    if done != len(renewal_ids):
        raise RuntimeError("a renewal changed under the batch settlement")
