"""The renewal engine: one pass reminds, charges due renewals, retries, and expires unpaid services.

The scheduler, the `flask renewals run` command, the customer area and the tests all call
`run_renewals` (or `retry_renewal`). A pass is safe to run twice at once or again after a crash:
- one Renewal row per (service, period), unique in the database;
- a worker claims a row (a guarded UPDATE that also re-checks the row is still due) before
  touching it, and commits once per service (webapp.renewals.claims); on PostgreSQL it claims,
  records, charges and settles a batch at a time (webapp.renewals.batch);
- each charge attempt is a Payment whose idempotency key the bank honours, recorded before the
  bank is asked; one whose outcome is unknown is resolved by asking the bank for that key
  (webapp.renewals.charging);
- reminders go out as one e-mail per customer and day, whose outbox dedupe key keeps a rerun
  from sending it twice (webapp.renewals.reminders); expiry is webapp.renewals.expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update

from webapp.clock import now_utc
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.renewals.batch import batch_supported, run_batches
from webapp.renewals.ceasing import after_expiry
from webapp.renewals.charging import due_renewals, open_renewals, process
from webapp.renewals.claims import default_worker
from webapp.renewals.expiry import expire, expired_services
from webapp.renewals.manage import attach_new_card
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.renewals.outcomes import RenewalOutcome, RenewalReport
from webapp.renewals.reminders import send_reminders
from webapp.renewals.services import settings
from webapp.transaction import commit

__all__ = [
    "RenewalOutcome",
    "RenewalReport",
    "default_worker",
    "retry_renewal",
    "run_renewals",
    "use_new_card",
]


def run_renewals(
    now: datetime, worker: str | None = None, lease_clock: Callable[[], datetime] = now_utc
) -> RenewalReport:
    """One pass as of `now`: reminders, new renewals, due charges and retries, expiries.

    `now` is the business date (the CLI may travel in time); claims are leases on the real
    clock (`lease_clock`), so a time-travelling run still respects a running scheduler.
    """
    worker = worker or default_worker()
    cfg = settings()
    report = RenewalReport()
    send_reminders(now, cfg, report)  # one e-mail per customer: auto-renewal and "Rinnova ora"
    open_renewals(now, cfg, report)
    if batch_supported():  # PostgreSQL: claim, record, charge and settle n at a time
        run_batches(now, worker, cfg, lease_clock, report)
    else:  # SQLite (no SKIP LOCKED): one claimed row at a time
        for renewal_id in due_renewals(now, lease_clock()):
            report.count(process(renewal_id, now, worker, cfg, lease_clock))
    for service_id in expired_services(now):
        report.count(expire(service_id, now, worker, cfg, lease_clock))
    after_expiry(now, report)  # the grace window's notice, then "Cessato"
    return report


def retry_renewal(
    service: Service,
    now: datetime,
    worker: str | None = None,
    lease_clock: Callable[[], datetime] = now_utc,
) -> RenewalOutcome | None:
    """Retry a failed renewal at once (the customer fixed the card); None if none is open.

    Commits. Returns the outcome: charged, failed, unknown or skipped.
    """
    renewal = db.session.scalar(
        select(Renewal).where(
            Renewal.service_id == service.id,
            Renewal.period_expires_at == service.expires_at,
            Renewal.status == RenewalStatus.FAILED,
        )
    )
    if renewal is None:
        return None
    # Guard: a compare-and-set on the failure this request saw (status and attempt count). A
    # twin (the same card return twice) that attempted it meanwhile has moved them: this one
    # then leaves the row alone instead of making it due again for a second attempt.
    retried = db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == renewal.id,
            Renewal.status == RenewalStatus.FAILED,
            Renewal.attempts == renewal.attempts,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    commit()
    if retried != 1:
        return RenewalOutcome.SKIPPED
    return process(renewal.id, now, worker or default_worker(), settings(), lease_clock)


def use_new_card(
    customer_id: int, card: SavedCard, now: datetime, worker: str | None = None
) -> list[tuple[Service, RenewalOutcome]]:
    """A card was just added: renewals that need one take it, failed ones are retried at once.

    Commits. Returns each retried service with its outcome.
    """
    retry = attach_new_card(customer_id, card, now)
    commit()
    return [
        (service, retry_renewal(service, now, worker) or RenewalOutcome.SKIPPED)
        for service in retry
    ]
