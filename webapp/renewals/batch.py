"""The renewal engine's batch path (PostgreSQL): claim, record, charge and settle n at a time.

Per batch of RENEWAL_BATCH_SIZE renewals, a dozen statements and three commits instead of ~18
statements and 3 commits per service. Each stage keeps its guard, named in its module:

1. claim (batch_claim) - `FOR UPDATE SKIP LOCKED`, a lease and the "still due" predicate;
2. record (batch_record) - orders, lines and PENDING payments with their idempotency keys, one
   commit before the bank is asked;
3. charge (batch_charge) - the bank from a bounded thread pool, one request per payment key;
4. settle (batch_settle) - set-based compare-and-set UPDATEs, the rest per row, one commit.

Rows that are not a plain first attempt (a retry with its order, a charge in flight, no usable
card, a service that stopped renewing) take the per-row path, already claimed. If settling a
batch raises, it is rolled back and each row is settled per row (asking the bank with the same
keys). The batch sends payments' `orders_paid` (one signal, plain ids); `order_paid` per order
(with `batch_settled=True`, loading the orders) only if a receiver of it takes no batch
(renewals' own and invoicing's do).

A pass runs two stages at once (run_batches): a thread settles batch k, with its own session,
while the pass claims, records and charges batch k+1. The two batches' rows are disjoint, each
batch keeps the order above, and claims are released only when no settlement is under way.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import func, not_, update

from webapp.bulk import any_of
from webapp.extensions import db
from webapp.renewals import notices
from webapp.renewals.batch_charge import Answer, charge_all
from webapp.renewals.batch_claim import Job, claim_batch, split
from webapp.renewals.batch_record import LostClaim, record
from webapp.renewals.batch_settle import crashed, settle
from webapp.renewals.charging import process_claimed
from webapp.renewals.claims import still_due
from webapp.renewals.models import Renewal
from webapp.renewals.outcomes import RenewalOutcome, RenewalReport
from webapp.renewals.services import RenewalSettings
from webapp.transaction import commit, rollback

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # RENEWAL_BATCH_SIZE overrides it; 0 turns the batch path off
BANK_THREADS = 8  # RENEWAL_BANK_THREADS: concurrent requests to the bank per worker
RELEASE_CHUNK = 5000


def batch_size() -> int:
    return int(current_app.config.get("RENEWAL_BATCH_SIZE", BATCH_SIZE))


def batch_supported() -> bool:
    """FOR UPDATE SKIP LOCKED and the array statements below are PostgreSQL's."""
    return batch_size() > 0 and db.session.get_bind().dialect.name == "postgresql"


def release_settled(ids: list[int], worker: str, now: datetime) -> set[int]:
    """Release this worker's claims on rows no longer due; returns the ids released."""
    due = func.coalesce(still_due(now), False)  # NOT of a NULL (no attempt scheduled) is NULL
    released = db.session.scalars(
        update(Renewal)
        .where(any_of(Renewal.id, ids), Renewal.claimed_by == worker, not_(due))
        .values(claimed_until=None, claimed_by=None)
        .returning(Renewal.id)
        .execution_options(synchronize_session=False)
    ).all()
    commit()
    return set(released)


def release_held(held: array, worker: str) -> None:
    for chunk in _chunks(held, RELEASE_CHUNK):
        db.session.execute(
            update(Renewal)
            .where(any_of(Renewal.id, chunk), Renewal.claimed_by == worker)
            .values(claimed_until=None, claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        commit()


def _chunks(values: array, size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size].tolist()


@dataclass
class Charged:
    """A batch asked of the bank, to settle: its claimed ids, the fast-path jobs and answers,
    the rows for the per-row path, and the outcomes known already."""

    ids: list[int]
    jobs: list[Job]
    answers: list[Answer]
    others: list[int]
    outcomes: list[RenewalOutcome]


def charge_batch(
    ids: list[int], now: datetime, worker: str, cfg: RenewalSettings, pool: ThreadPoolExecutor
) -> Charged:
    """Record the claimed batch's attempts (one commit) and ask the bank for each."""
    jobs, others = split(ids, now, worker, cfg)
    db.session.rollback()  # end the read transaction (nothing written yet)
    # The notices of renewals never announced: committed with the record, before the bank.
    notices.announce_jobs([j for j in jobs if j.announce], now, cfg)
    outcomes: list[RenewalOutcome] = []
    if jobs:
        try:
            jobs = record(jobs, now, worker)
        except LostClaim as exc:
            log.warning("batch not recorded: %s", exc)
            outcomes += [RenewalOutcome.SKIPPED] * len(jobs)
            jobs = []
    answers = charge_all(jobs, pool) if jobs else []
    return Charged(ids, jobs, answers, others, outcomes)


def settle_batch(
    batch: Charged, now: datetime, worker: str, cfg: RenewalSettings
) -> tuple[list[RenewalOutcome], list[int]]:
    """Settle a charged batch, then its per-row rows, and release what is no longer due.

    Returns the outcomes and the ids kept claimed until the pass ends: still due (the bank did
    not answer, a charge still in flight), so the pass does not take them again and again.
    An errored row keeps its claim until it runs out (a crash-like back-off).
    """
    outcomes = list(batch.outcomes)
    errored: set[int] = set()
    if batch.jobs:
        try:
            settled = settle(batch.jobs, batch.answers, now, cfg)
        except Exception:
            # Settle each row on its own: the per-row path asks the bank with the same keys.
            rollback()
            log.exception(
                "batch settlement failed: settling its %s renewals per row", len(batch.jobs)
            )
            settled = [
                RenewalOutcome.ERRORS
                if crashed(a)
                else process_claimed(j.renewal_id, now, worker, cfg, keep_claim=True)
                for j, a in zip(batch.jobs, batch.answers, strict=True)
            ]
        outcomes += settled
        errored |= {
            j.renewal_id
            for j, o in zip(batch.jobs, settled, strict=True)
            if o is RenewalOutcome.ERRORS
        }
    for renewal_id in batch.others:
        outcome = process_claimed(renewal_id, now, worker, cfg, keep_claim=True)
        outcomes.append(outcome)
        if outcome is RenewalOutcome.ERRORS:
            errored.add(renewal_id)
    released = release_settled(batch.ids, worker, now)
    return outcomes, [i for i in batch.ids if i not in released and i not in errored]


def _settle_in_context(app: Flask, batch: Charged, *args) -> tuple:
    """settle_batch in the settling thread: its own app context, session and connection."""
    with app.app_context():
        try:
            return settle_batch(batch, *args)
        finally:
            db.session.remove()


def run_batches(
    now: datetime,
    worker: str,
    cfg: RenewalSettings,
    lease_clock: Callable[[], datetime],
    report: RenewalReport,
) -> None:
    """Claim and process batches until nothing due is left unclaimed.

    Two stages overlap: while a thread settles batch k (its own session and transaction:
    compare-and-set updates, invoices, receipts), this thread claims, records and charges
    batch k+1. Each batch keeps its order (claim, record and commit, charge, settle and
    commit); the rows of the two are disjoint (both claimed by this worker). The invoices'
    counter lock is only ever taken by the settling thread.
    """
    size = batch_size()
    held = array("q")  # still due after this pass's attempt: released when the pass ends
    threads = int(current_app.config.get("RENEWAL_BANK_THREADS", BANK_THREADS))
    app = current_app._get_current_object()
    pending: Future | None = None
    with (
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bank") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle") as settler,
    ):
        try:
            while ids := claim_batch(now, worker, lease_clock(), size):
                batch = charge_batch(ids, now, worker, cfg, pool)
                if pending is not None:
                    _tally(pending.result(), report, held)
                pending = settler.submit(_settle_in_context, app, batch, now, worker, cfg)
            if pending is not None:
                _tally(pending.result(), report, held)
        finally:
            if pending is not None:
                wait([pending])  # never release claims while a settlement is under way
            rollback()
            release_held(held, worker)


def _tally(settled: tuple[list[RenewalOutcome], list[int]], report: RenewalReport, held: array):
    outcomes, still_due_ids = settled
    for outcome in outcomes:
        report.count(outcome)
    held.extend(still_due_ids)
