"""SMTP down: e-mails wait in the outbox; once it is back each is delivered exactly once, even
with two sender processes (`flask outbox send`) and two sender threads at the same time."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.reliability.conftest import ROOT, _env, free_port, wait_until
from tests.unit.helpers import confirmation_context
from webapp.clock import now_utc
from webapp.mailsink import MailSink
from webapp.outbox.models import OutboxEmail
from webapp.outbox.services import queue_email, send_outbox
from webapp.transaction import commit

pytestmark = pytest.mark.reliability

N = 200


@pytest.fixture
def smtp(app):
    """The shop sends to this port; the sink is started only when the test says so."""
    from webapp.extensions import mail

    port = free_port()
    app.config.update(MAIL_SUPPRESS_SEND=False, MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    mail.init_app(app)
    sink = MailSink(port=port)
    yield sink
    with contextlib.suppress(Exception):
        sink.stop()


def _unsent(db) -> int:
    db.session.rollback()
    unsent = select(func.count(OutboxEmail.id)).where(OutboxEmail.sent_at.is_(None))
    return db.session.scalar(unsent)


def _sender_process(app) -> subprocess.Popen:
    """`flask outbox send` in its own process, on the same database and SMTP server."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "send"],
        cwd=ROOT,
        env=_env(
            DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=app.config["MAIL_PORT"],
            MAIL_SUPPRESS_SEND=0,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_smtp_down_loses_nothing_and_delivers_each_email_once_when_back(app, db, smtp, capsys):
    for i in range(N):
        queue_email(
            f"cliente{i}@example.it",
            f"Prova {i}",
            "payment_confirmation",
            dedupe_key=f"smtp-outage-{i}",
            **confirmation_context(),
        )
    commit()  # sending right after the commit fails: nobody listens on the SMTP port
    assert _unsent(db) == N
    for minutes in (0, 10, 60):  # the outbox job runs again while SMTP is still down
        assert send_outbox(now=now_utc() + timedelta(minutes=minutes), limit=N) == 0
    rows = db.session.scalars(select(OutboxEmail)).all()
    assert len(rows) == N and all(r.sent_at is None and r.attempts >= 2 for r in rows)
    assert smtp.messages == []

    smtp.start()
    # Time passes: every retry is due now, for processes that read the real clock.
    db.session.execute(update(OutboxEmail).values(next_attempt_at=now_utc()))
    db.session.commit()
    procs = [_sender_process(app) for _ in range(2)]
    barrier = threading.Barrier(2)
    by_thread: list[int] = []
    by_process: list[int] = []

    def sender() -> None:
        with app.app_context():
            barrier.wait()
            total = 0
            while sent := send_outbox(now=now_utc() + timedelta(seconds=1), limit=20):
                total += sent
            by_thread.append(total)
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    wait_until(lambda: smtp.messages, 30, "the sender processes to start sending")
    for t in threads:
        t.start()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        by_process.append(int(out.split()[0]))  # "N e-mails sent."
    for t in threads:
        t.join(60)
    swept = 0
    while sent := send_outbox(now=now_utc() + timedelta(seconds=1)):  # a last sweep
        swept += sent
    assert send_outbox(now=now_utc() + timedelta(hours=1)) == 0

    assert _unsent(db) == 0
    ids = Counter(str(m["Message-ID"]) for m in smtp.messages)
    to = Counter(str(m["To"]) for m in smtp.messages)
    assert len(smtp.messages) == N, f"{len(smtp.messages)} messages for {N} e-mails"
    assert max(ids.values()) == 1 and max(to.values()) == 1
    expected = {f"<outbox-{r.id}.{r.created_at:%Y%m%d%H%M%S}@pecshop.local>" for r in rows}
    assert set(ids) == expected
    with capsys.disabled():
        print(
            f"\n[reliability] SMTP down: {N} e-mails queued, 0 sent, 0 lost; back: "
            f"{len(smtp.messages)} delivered once (processes {by_process}, threads {by_thread}, "
            f"last sweep {swept}), 0 duplicates"
        )
