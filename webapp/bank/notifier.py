"""Signed notifications to the shop: queued with the payment's result (queue_notification), an
outbox delivered after commit, retried with backoff."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask, current_app
from sqlalchemy import select, update

from webapp.signing import sign_request

from .extensions import bank_now, db
from .models import Notification, Payment

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
#: While a POST is in flight its row is leased, so a second deliverer does not send it too.
LEASE = timedelta(seconds=30)
TIMEOUT_SECONDS = 5

Post = Callable[..., Any]


def backoff(attempts: int) -> timedelta:
    """Delay after the n-th failed attempt: 1 s, 2 s, 4 s, ..."""
    return timedelta(seconds=2 ** (attempts - 1))


def queue_notification(payment: Payment, now: datetime) -> None:
    """The shop's notification of a payment's result, queued in the payment's transaction."""
    body = {
        "payment_id": payment.id,
        "order_ref": payment.order_ref,
        "status": str(payment.status),
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
    }
    assert payment.notify_url is not None
    db.session.add(
        Notification(
            payment_id=payment.id,
            url=payment.notify_url,
            body=json.dumps(body, separators=(",", ":"), sort_keys=True),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def deliver_due(now: datetime, post: Post | None = None) -> int:
    """Send every due notification once (needs an app context); return how many were delivered."""
    post = post or current_app.config.get("BANK_NOTIFY_POST") or requests.post
    secret = current_app.config["BANK_SHARED_SECRET"]
    merchant_id = current_app.config["BANK_MERCHANT_ID"]
    due = db.session.scalars(
        select(Notification.id)
        .where(
            Notification.delivered_at.is_(None),
            Notification.gave_up_at.is_(None),
            Notification.next_attempt_at <= now,
        )
        .order_by(Notification.next_attempt_at)
    ).all()
    db.session.commit()
    delivered = 0
    for note_id in due:
        note = _claim(note_id, now)
        if note is None:
            continue
        ok, error = _send(post, note, secret, merchant_id)
        note.attempts += 1
        if ok:
            note.delivered_at = now
            delivered += 1
        elif note.attempts >= MAX_ATTEMPTS:
            note.gave_up_at = now
            log.warning("notification %s for %s given up: %s", note.id, note.payment_id, error)
        else:
            note.next_attempt_at = now + backoff(note.attempts)
            log.info("notification %s attempt %d failed: %s", note.id, note.attempts, error)
        note.last_error = error
        db.session.commit()
    return delivered


def _claim(note_id: int, now: datetime) -> Notification | None:
    """Lease a due row with a conditional UPDATE: only one deliverer wins it."""
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.id == note_id,
            Notification.delivered_at.is_(None),
            Notification.gave_up_at.is_(None),
            Notification.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()  # the POST happens outside any transaction (SQLite: short write locks)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return db.session.get(Notification, note_id, populate_existing=True)


def _send(post: Post, note: Notification, secret: str, merchant_id: str) -> tuple[bool, str | None]:
    body = note.body.encode()
    path = urlsplit(note.url).path or "/"
    # Signature freshness is wall-clock time, whatever the bank's business clock says.
    headers = sign_request(secret, merchant_id, "POST", path, body, int(time.time()))
    headers["Content-Type"] = "application/json"
    try:
        response = post(note.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # any network failure is just a failed attempt
        return False, type(exc).__name__
    status = getattr(response, "status_code", 0)
    return 200 <= status < 300, None if 200 <= status < 300 else f"HTTP {status}"


class NotifierThread(threading.Thread):
    """Daemon thread calling deliver_due every `interval` seconds, or sooner when woken."""

    def __init__(self, app: Flask, interval: float = 1.0) -> None:
        super().__init__(name="bank-notifier", daemon=True)
        self.app = app
        self.interval = interval
        self.wake_event = threading.Event()
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Deliver until stopped; one failing round never kills the thread."""
        while not self.stop_event.is_set():
            with self.app.app_context():
                try:
                    deliver_due(bank_now())
                except Exception:
                    log.exception("notification round failed")
                    db.session.rollback()
            self.wake_event.wait(self.interval)
            self.wake_event.clear()

    def stop(self) -> None:
        """Ask the thread to end after its current round."""
        self.stop_event.set()
        self.wake_event.set()


def start_notifier(app: Flask, interval: float = 1.0) -> NotifierThread:
    """Start the app's notifier thread once; later calls return the running one."""
    thread = app.extensions.get("bank_notifier")
    if thread is None or not thread.is_alive():
        thread = NotifierThread(app, interval)
        app.extensions["bank_notifier"] = thread
        thread.start()
    return thread


def wake(app: Flask) -> None:
    """Ask the notifier to run now (called right after a commit that queued notifications)."""
    thread = app.extensions.get("bank_notifier")
    if thread is not None:
        thread.wake_event.set()
