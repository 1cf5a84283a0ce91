"""The transmission pass: what the scheduler runs every minute and `flask invoices transmit` now.

It commits: the new attempts first (their names and bytes are fixed before any call), then each
claim before its call (the call runs outside any transaction), then each outcome; then it reads
the intermediary's feed. The intermediary down: the attempts wait with backoff, nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from webapp.extensions import db
from webapp.invoicing.sdi_gateway import SdiUnavailable
from webapp.invoicing.sdi_inbox import fetch_feed
from webapp.invoicing.transmission import claim, deliver, due_attempts, prepare_due

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    prepared: int = 0
    sent: int = 0
    waiting: int = 0
    notifications: int = 0
    feed_error: str | None = None

    def __str__(self) -> str:
        text = (
            f"{self.prepared} preparate, {self.sent} inviate, {self.waiting} in attesa, "
            f"{self.notifications} notifiche"
        )
        return text + (f" (feed non disponibile: {self.feed_error})" if self.feed_error else "")


def transmit_pass(now: datetime) -> PassReport:
    """Prepare, send and read the notifications, once."""
    report = PassReport()
    report.prepared = prepare_due(now)
    db.session.commit()
    for attempt_id in due_attempts(now):
        attempt = claim(attempt_id, now)
        db.session.commit()  # the claim holds for LEASE; the call runs outside the transaction
        if attempt is None:
            continue
        if deliver(attempt, now):
            report.sent += 1
        else:
            report.waiting += 1
        db.session.commit()
    try:
        report.notifications = fetch_feed(now)
        db.session.commit()
    except SdiUnavailable as exc:
        db.session.rollback()
        report.feed_error = str(exc)[:200]
    return report
