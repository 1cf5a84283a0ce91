"""Claims: a worker takes a renewal row with a guarded UPDATE (a lease) before touching it.

Of two workers (two schedulers, a CLI pass beside the scheduler) only one holds a row at a time;
a crashed worker's lease runs out after RENEWAL_CLAIM_SECONDS. Work lists are read as snapshots
of ids (8 bytes each), never as loaded objects.
"""

from __future__ import annotations

import os
import socket
from array import array
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, update

from webapp.extensions import db
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals.models import OPEN_RENEWAL_STATUSES, Renewal
from webapp.transaction import commit

# A claim outlives any bank call (timeouts are seconds); a crashed worker's claim runs out.
# RENEWAL_CLAIM_SECONDS in the config overrides it (tests of a killed worker set it short).
CLAIM_SECONDS = 300
IN_FLIGHT = (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)
ID_BATCH = 5000  # due ids are read from the database this many at a time

# A charge of the renewal's order whose outcome is still to be asked.
CHARGE_IN_FLIGHT = exists().where(
    Payment.order_id == Renewal.order_id,
    Payment.channel == PaymentChannel.RENEWAL,
    Payment.status.in_(IN_FLIGHT),
)


def default_worker() -> str:
    """A name for this process in claims: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def still_due(now: datetime) -> ColumnElement[bool]:
    """Open, and an attempt is due by `now` or a charge's outcome is still to be asked."""
    return and_(
        Renewal.status.in_(OPEN_RENEWAL_STATUSES),
        or_(Renewal.next_attempt_at <= now, CHARGE_IN_FLIGHT),
    )


def unclaimed(lease_now: datetime) -> ColumnElement[bool]:
    """No live claim holds the row (a crashed worker's lease has run out)."""
    return or_(Renewal.claimed_until.is_(None), Renewal.claimed_until < lease_now)


def due_and_unclaimed(now: datetime, lease_now: datetime) -> Select:
    """The ids of the renewals a pass may take, in due order."""
    return (
        select(Renewal.id)
        .where(still_due(now), unclaimed(lease_now))
        .order_by(Renewal.next_attempt_at, Renewal.id)
    )


def claim(
    renewal_id: int, worker: str, lease_now: datetime, due_at: datetime | None = None
) -> bool:
    """Take the row for this worker unless another holds a live claim; commits.

    With `due_at`, the row is taken only if an attempt is still due then (or a charge is in
    flight): the id list was read before, and a twin pass may have attempted it since. This
    compare-and-set is what makes a second scheduler on a retry day harmless.
    """
    seconds = current_app.config.get("RENEWAL_CLAIM_SECONDS", CLAIM_SECONDS)
    claimed = db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == renewal_id,
            unclaimed(lease_now),
            *([still_due(due_at)] if due_at is not None else []),
        )
        .values(claimed_until=lease_now + timedelta(seconds=seconds), claimed_by=worker)
        .execution_options(synchronize_session=False)
    ).rowcount
    commit()
    return claimed == 1


def release(renewal: Renewal) -> None:
    renewal.claimed_until = None
    renewal.claimed_by = None


def unclaim(renewal_id: int, worker: str) -> None:
    """Give the row back after a rolled-back attempt (only if this worker still holds it)."""
    db.session.execute(
        update(Renewal)
        .where(Renewal.id == renewal_id, Renewal.claimed_by == worker)
        .values(claimed_until=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    commit()


def snapshot_ids(stmt: Select) -> array:
    """The ids a query selects, read in batches into a compact array; ends the read transaction.

    The pass works on this snapshot, one id at a time: 8 bytes per id, no objects held.
    """
    ids = array("q")
    for batch in db.session.scalars(stmt.execution_options(yield_per=ID_BATCH)).partitions():
        ids.extend(batch)
    commit()  # before claiming
    return ids
