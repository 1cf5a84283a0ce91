"""The renewal batch's first stage: claim due renewals n at a time, and read them as jobs.

claim - `UPDATE renewal ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)
RETURNING id`, committed. Guard: the row locks (a twin worker skips rows being claimed
instead of waiting), the lease (`claimed_until`, a crashed worker's runs out) and the
"still due" predicate, which FOR UPDATE re-checks on the newest committed version of a row:
a renewal is claimed only while still due (claims.claim(..., due_at=now) per row).

The claimed rows that are a plain first attempt become fast-path `Job`s; the others take the
per-row path (charging.process_claimed), already claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, text, update

from webapp.bulk import any_of
from webapp.clock import rome_date
from webapp.extensions import db
from webapp.money import vat_cents
from webapp.payments.models import SavedCard
from webapp.renewals import notices
from webapp.renewals.charging import RENEWABLE_KINDS
from webapp.renewals.claims import CHARGE_IN_FLIGHT, CLAIM_SECONDS, due_and_unclaimed
from webapp.renewals.models import Renewal, Service, ServiceStatus
from webapp.renewals.services import RenewalSettings
from webapp.shop.billing import split_payment_customers
from webapp.shop.catalogue import list_price_on
from webapp.shop.models import Customer, Product
from webapp.transaction import commit


@dataclass(frozen=True)
class Job:
    """A renewal of the fast path: a first attempt, with everything the charge needs."""

    renewal_id: int
    attempt: int
    service_id: int
    customer_id: int
    customer_email: str
    product_id: int
    product_name: str
    product_kind: str
    yearly_price_cents: int
    years: int
    net_cents: int
    vat_cents: int
    period: datetime
    card_id: int
    token: str
    order_id: int = 0
    payment_id: int = 0
    order_number: str = ""
    split_payment: bool = False  # a public administration pays the net only
    announce: bool = False  # never announced for the period: the notice goes with the record

    @property
    def total_cents(self) -> int:
        return self.net_cents if self.split_payment else self.net_cents + self.vat_cents

    @property
    def key(self) -> str:
        return f"renewal-{self.renewal_id}-{self.attempt}"

    @property
    def order_ref(self) -> str:
        return f"ORD-{self.order_id}"  # payments.settlement.order_ref


def claim_batch(now: datetime, worker: str, lease_now: datetime, limit: int) -> list[int]:
    """Claim up to `limit` due renewals nobody holds, skipping rows a twin is claiming; commits."""
    seconds = current_app.config.get("RENEWAL_CLAIM_SECONDS", CLAIM_SECONDS)
    due = due_and_unclaimed(now, lease_now).limit(limit).with_for_update(skip_locked=True)
    # The scan's cost estimate on a large table turns PostgreSQL's JIT on: ~0.3 s of compiling
    # for a ~40 ms statement, each batch. Off for this transaction only.
    db.session.execute(text("SET LOCAL jit = off"))
    ids = db.session.scalars(
        update(Renewal)
        .where(Renewal.id.in_(due.scalar_subquery()))
        .values(claimed_until=lease_now + timedelta(seconds=seconds), claimed_by=worker)
        .returning(Renewal.id)
        .execution_options(synchronize_session=False)
    ).all()
    commit()
    return sorted(ids)


def split(ids: list[int], now: datetime, worker: str, cfg: RenewalSettings) -> tuple[list, list]:
    """The claimed rows as fast-path jobs, and the ids that take the per-row path."""
    rows = _claimed_rows(ids, worker)
    today = rome_date(now)
    public = split_payment_customers(sorted({row.customer_id for row in rows}))
    jobs, others = [], []
    for row in rows:
        job = _job_of(row, today, cfg, row.customer_id in public) if _plain(row, today) else None
        # Never announced: the notice is queued with the record's commit, before the bank is
        # asked. Announced otherwise: the per-row path sends the new notice and waits a day.
        verdict = notices.batch_verdict(row, job.total_cents, job.years) if job else "no"
        if verdict == "no":
            others.append(row.renewal_id)
        else:
            jobs.append(replace(job, announce=verdict == "announce"))
    return jobs, others


def _claimed_rows(ids: list[int], worker: str) -> list:
    """What the charge needs of each claimed renewal: service, product, buyer and card."""
    return db.session.execute(
        select(
            Renewal.id.label("renewal_id"),
            Renewal.attempts,
            Renewal.order_id,
            Renewal.period_expires_at.label("period"),
            CHARGE_IN_FLIGHT.label("in_flight"),
            Service.id.label("service_id"),
            Service.customer_id,
            Service.status,
            Service.auto_renew,
            Service.expires_at,
            Service.frequency_years.label("years"),
            Service.announced_period,
            Service.announced_cents,
            Service.announced_years,
            Service.announced_card_id,
            Product.id.label("product_id"),
            Product.kind,
            Product.name,
            Product.yearly_price_cents.label("own_price"),
            Customer.email,
            SavedCard.id.label("card_id"),
            SavedCard.gateway_token.label("token"),
            SavedCard.removed_at,
            SavedCard.exp_year,
            SavedCard.exp_month,
        )
        .join(Service, Service.id == Renewal.service_id)
        .join(Product, Product.id == Service.product_id)
        .join(Customer, Customer.id == Service.customer_id)
        .outerjoin(SavedCard, SavedCard.id == Service.saved_card_id)
        .where(any_of(Renewal.id, ids), Renewal.claimed_by == worker)
        .order_by(Renewal.id)
    ).all()


def _plain(row, today) -> bool:
    """A plain first attempt: no order yet, the service still renewing this period, a usable
    card. Anything else takes the per-row path."""
    return (
        not row.in_flight
        and row.order_id is None
        and row.status is ServiceStatus.ACTIVE
        and row.auto_renew
        and row.kind in RENEWABLE_KINDS
        and row.expires_at == row.period
        and today <= rome_date(row.period)  # valid through its expiry day
        and row.card_id is not None
        and row.removed_at is None
        and (row.exp_year, row.exp_month) >= (today.year, today.month)  # SavedCard.is_expired
    )


def _job_of(row, today, cfg: RenewalSettings, split_payment: bool) -> Job:
    """The fast-path job of a plain claimed row, priced as renewal_price: the list price valid
    today x the frequency, no discount."""
    yearly = list_price_on(row.product_id, row.own_price, today)
    net = yearly * row.years
    return Job(
        renewal_id=row.renewal_id,
        attempt=row.attempts + 1,
        service_id=row.service_id,
        customer_id=row.customer_id,
        customer_email=row.email,
        product_id=row.product_id,
        product_name=row.name,
        product_kind=row.kind,
        yearly_price_cents=yearly,
        years=row.years,
        net_cents=net,
        vat_cents=vat_cents(net, cfg.vat_rate),
        period=row.period,
        card_id=row.card_id,
        token=row.token,
        split_payment=split_payment,
    )
