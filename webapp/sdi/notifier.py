"""Notifications pushed to the seller's webhook: signed POSTs, retried with backoff.

The seller may also read them by cursor (GET /api/v1/notifiche?dopo=N): the webhook is a
shortcut, the feed is the record. A delivered or abandoned push stays in the feed.
"""

from __future__ import annotations

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

from .extensions import db, sdi_now
from .models import Notification
from .services import tick

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
LEASE = timedelta(seconds=30)  # a POST in flight: a second deliverer leaves the row alone
TIMEOUT_SECONDS = 5
CURSOR_HEADER = "X-Sdi-Cursore"

Post = Callable[..., Any]


def backoff(attempts: int) -> timedelta:
    """Delay after the n-th failed attempt: 1 s, 2 s, 4 s, ... at most an hour."""
    return timedelta(seconds=min(2 ** (attempts - 1), 3600))


def deliver_due(now: datetime, post: Post | None = None) -> int:
    """Push every due notification once (needs an app context); return how many went through."""
    url = current_app.config.get("SDI_WEBHOOK_URL")
    if not url:
        return 0
    post = post or current_app.config.get("SDI_NOTIFY_POST") or requests.post
    due = db.session.scalars(
        select(Notification.id)
        .where(
            Notification.delivered_at.is_(None),
            Notification.gave_up_at.is_(None),
            Notification.next_attempt_at <= now,
        )
        .order_by(Notification.id)
    ).all()
    db.session.commit()
    delivered = 0
    for note_id in due:
        note = _claim(note_id, now)
        if note is None:
            continue
        ok, error = _send(post, url, note)
        note.attempts += 1
        if ok:
            note.delivered_at = now
            delivered += 1
        elif note.attempts >= MAX_ATTEMPTS:
            note.gave_up_at = now
            log.warning("notification %s given up: %s", note.id, error)
        else:
            note.next_attempt_at = now + backoff(note.attempts)
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
    db.session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return db.session.get(Notification, note_id, populate_existing=True)


def _send(post: Post, url: str, note: Notification) -> tuple[bool, str | None]:
    cfg = current_app.config
    path = urlsplit(url).path or "/"
    headers = sign_request(
        cfg["SDI_SHARED_SECRET"], cfg["SDI_CLIENT_ID"], "POST", path, note.xml, int(time.time())
    )
    headers["Content-Type"] = "application/xml"
    headers[CURSOR_HEADER] = str(note.id)
    try:
        response = post(url, data=note.xml, headers=headers, timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # any network failure is just a failed attempt
        return False, type(exc).__name__
    status = getattr(response, "status_code", 0)
    return 200 <= status < 300, None if 200 <= status < 300 else f"HTTP {status}"


class NotifierThread(threading.Thread):
    """Daemon thread: the deadlines (DT, AT) and the pushes, every `interval` seconds."""

    def __init__(self, app: Flask, interval: float = 1.0) -> None:
        super().__init__(name="sdi-notifier", daemon=True)
        self.app = app
        self.interval = interval
        self.wake_event = threading.Event()
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            with self.app.app_context():
                try:
                    tick(sdi_now())
                    db.session.commit()
                    deliver_due(sdi_now())
                except Exception:
                    log.exception("SdI notification round failed")
                    db.session.rollback()
                finally:
                    db.session.remove()
            self.wake_event.wait(self.interval)
            self.wake_event.clear()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()


def start_notifier(app: Flask, interval: float = 1.0) -> NotifierThread:
    """Start the app's notifier thread once; later calls return the running one."""
    thread = app.extensions.get("sdi_notifier")
    if thread is None or not thread.is_alive():
        thread = NotifierThread(app, interval)
        app.extensions["sdi_notifier"] = thread
        thread.start()
    return thread


def wake(app: Flask) -> None:
    thread = app.extensions.get("sdi_notifier")
    if thread is not None:
        thread.wake_event.set()
