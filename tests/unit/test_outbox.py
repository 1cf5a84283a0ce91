"""E-mail outbox: queued in the transaction, sent after commit, nothing lost while SMTP is down,
nothing sent twice once it is back."""

from __future__ import annotations

import contextlib
import socket
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.unit.helpers import confirmation_context
from webapp.clock import now_utc
from webapp.mailsink import MailSink
from webapp.outbox.models import OutboxEmail
from webapp.outbox.services import queue_email, send_outbox
from webapp.transaction import commit, once_more_after_conflict, rollback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(app):
    """A real SMTP server the app sends to; `sink.stop()` simulates an outage."""
    port = _free_port()
    app.config.update(
        MAIL_SUPPRESS_SEND=False, MAIL_SERVER="127.0.0.1", MAIL_PORT=port, TESTING=False
    )
    from webapp.extensions import mail

    mail.init_app(app)
    sink = MailSink(port=port)
    yield sink
    with contextlib.suppress(Exception):
        sink.stop()


def _queue(n: int, prefix: str = "m"):
    for i in range(n):
        queue_email(
            f"{prefix}{i}@example.it",
            f"Prova {i}",
            "payment_confirmation",
            dedupe_key=f"{prefix}-{i}",
            **confirmation_context(),
        )


def test_rollback_sends_nothing(db, smtp):
    smtp.start()
    _queue(1)
    rollback()
    assert db.session.scalar(select(func.count(OutboxEmail.id))) == 0
    assert smtp.messages == []


def test_dedupe_key_queues_once(db):
    _queue(1)
    _queue(1)
    db.session.commit()
    assert db.session.scalar(select(func.count(OutboxEmail.id))) == 1


def test_smtp_outage_loses_nothing_and_sends_once_when_back(db, smtp, now):
    _queue(3)
    commit()  # SMTP is down (the sink is not started): the send after commit fails
    rows = db.session.scalars(select(OutboxEmail)).all()
    assert [r.sent_at for r in rows] == [None] * 3
    assert all(r.attempts == 1 and r.last_error for r in rows)

    later = max(r.next_attempt_at for r in rows) + timedelta(seconds=1)
    assert send_outbox(now=later - timedelta(seconds=2)) == 0  # not due yet: no hammering
    smtp.start()
    assert send_outbox(now=later) == 3
    assert send_outbox(now=later + timedelta(hours=1)) == 0
    assert sorted(str(m["To"]) for m in smtp.messages) == [
        "m0@example.it",
        "m1@example.it",
        "m2@example.it",
    ]


def test_two_senders_at_once_send_each_email_once(app, db, smtp):
    smtp.start()
    _queue(20, prefix="c")
    db.session.commit()
    barrier = threading.Barrier(2)

    def sender():
        with app.app_context():
            barrier.wait()
            send_outbox(now=now_utc() + timedelta(minutes=1))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(smtp.messages) == 20
    assert len({str(m["To"]) for m in smtp.messages}) == 20
    assert (
        db.session.scalar(select(func.count(OutboxEmail.id)).where(OutboxEmail.sent_at.is_(None)))
        == 0
    )


# --- a twin request that won a unique key ---------------------------------------------------


def _unique_clash(db) -> None:
    """Insert an e-mail whose dedupe key is taken: the database refuses it at flush."""
    db.session.add(OutboxEmail(**_row("clash")))
    db.session.flush()


def _row(key: str) -> dict:
    return dict(
        to_addr="a@example.it",
        subject="s",
        body_text="t",
        body_html="h",
        dedupe_key=key,
        created_at=now_utc(),
        next_attempt_at=now_utc(),
    )


def test_once_more_after_conflict_runs_again_on_a_clean_transaction(db):
    db.session.add(OutboxEmail(**_row("clash")))
    db.session.commit()
    runs = []

    def action():
        runs.append(len(runs))
        _queue(1, prefix=f"run{len(runs)}")
        if len(runs) == 1:
            _unique_clash(db)  # the twin's row was there first
        commit()
        return len(runs)

    assert once_more_after_conflict(action) == 2
    keys = set(db.session.scalars(select(OutboxEmail.dedupe_key)))
    assert keys == {"clash", "run2-0"}  # the first run's e-mail was rolled back, not sent


def test_once_more_after_conflict_gives_up_after_the_second_clash(db):
    from sqlalchemy.exc import IntegrityError

    db.session.add(OutboxEmail(**_row("clash")))
    db.session.commit()
    runs = []

    def action():
        runs.append(1)
        _unique_clash(db)

    with pytest.raises(IntegrityError):
        once_more_after_conflict(action)
    assert len(runs) == 2
    rollback()
