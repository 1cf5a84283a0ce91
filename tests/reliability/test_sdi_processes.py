"""Two transmitters at once (two `flask invoices transmit` processes) on PostgreSQL send each
invoice once: one attempt per document, one file per attempt at the SdI · Sandbox (a process of
its own), no 00002 duplicate. Then a pass with the sandbox down loses nothing: the attempts wait
and the next pass sends them."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.reliability.conftest import (
    MERCHANT,
    PROCESS_TIMEOUT,
    ROOT,
    _env,
    free_port,
    requires_postgres,
    scratch_databases,
    wait_until,
)

pytestmark = [pytest.mark.reliability, requires_postgres]
SDI_SECRET = "reliability-sdi-secret"
INVOICES = 40


class SandboxProcess:
    """`python -m webapp.sdi` on a free port with its own SQLite database (no webhook: the
    transmitters read the feed)."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{folder / 'sdi.db'}"
        self.log = folder / "sdi.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> SandboxProcess:
        import socket

        env = _env(
            SDI_DATABASE_URL=self.database_url,
            SDI_SHARED_SECRET=SDI_SECRET,
            SDI_CLIENT_ID=MERCHANT,
            SDI_NOTIFY_ENABLED=0,
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "webapp.sdi", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 30, "the SdI sandbox")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def files(self) -> list[tuple[str, str]]:
        import sqlite3

        path = self.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT file_name, outcome FROM sdi_file ORDER BY id").fetchall()


def transmitter(shop_url: str, sdi_url: str, log: Path) -> subprocess.Popen:
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "invoices", "transmit"],
            cwd=ROOT,
            env=_env(
                DATABASE_URL=shop_url,
                SDI_API_URL=sdi_url,
                SDI_SHARED_SECRET=SDI_SECRET,
                SDI_CLIENT_ID=MERCHANT,
                SDI_TIMEOUT_SECONDS=5,
                MAIL_SUPPRESS_SEND=1,
            ),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def finish(proc: subprocess.Popen, log: Path) -> str:
    out, _ = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, out + log.read_text()[-3000:]
    return out


def _seed_invoices(app, n: int) -> list[int]:
    """n paid orders of n business customers (codice destinatario TESTRC1): n invoices."""
    from dataclasses import replace

    from tests.unit.invoicing_helpers import PROFILES, confirmed_order, pay
    from webapp.demo import seed
    from webapp.extensions import db
    from webapp.invoicing.models import Invoice
    from webapp.shop.billing import save_profile
    from webapp.shop.models import Customer, Product

    now = datetime.now(UTC)
    with app.app_context():
        db.create_all()
        seed(now)
        db.session.commit()
        products = {p.sku: p for p in db.session.scalars(select(Product))}
        for i in range(n):
            customer = Customer(
                email=f"sdi-{i}@example.it",
                name=f"Cliente {i}",
                tax_code="RSSMRA85T10A562S",
                password_hash="!",
            )
            db.session.add(customer)
            db.session.flush()
            save_profile(customer.id, replace(PROFILES["business_code"], sdi_code="TESTRC1"))
            db.session.commit()
            pay(confirmed_order(customer, products, now), now)
            db.session.commit()
        ids = list(db.session.scalars(select(Invoice.id)))
        db.session.remove()
        return ids


def test_two_transmitters_at_once_send_each_invoice_once(tmp_path):
    from webapp import create_app
    from webapp.config import TestConfig
    from webapp.extensions import db
    from webapp.invoicing.models import Invoice, Transmission

    with scratch_databases("shop") as (shop_url,):
        app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": shop_url})
        invoices = _seed_invoices(app, INVOICES)
        sandbox = SandboxProcess(tmp_path).start()
        try:
            logs = [tmp_path / f"transmit-{i}.log" for i in range(2)]
            procs = [transmitter(shop_url, sandbox.url, log) for log in logs]
            outputs = [finish(p, log) for p, log in zip(procs, logs, strict=True)]
            files = sandbox.files()
        finally:
            sandbox.stop()
        with app.app_context():
            attempts = db.session.execute(
                select(Transmission.invoice_id, func.count()).group_by(Transmission.invoice_id)
            ).all()
            states = set(db.session.scalars(select(Invoice.sdi_state)))
            names = set(db.session.scalars(select(Transmission.file_name)))
            db.session.remove()
            db.engine.dispose()
    assert sorted(i for i, _ in attempts) == sorted(invoices)
    assert {count for _, count in attempts} == {1}, "a document got two attempts"
    assert len(files) == INVOICES, f"files sent twice: {len(files)} for {INVOICES}\n{outputs}"
    assert {name for name, _ in files} == names
    assert {outcome for _, outcome in files} == {"RC"}, "a duplicate (00002) reached the SdI"
    assert {s.value for s in states} <= {"inviata", "consegnata"}
    sent = [int(re.search(r"(\d+) inviate", out).group(1)) for out in outputs]
    assert sum(sent) == INVOICES, outputs  # each attempt sent by one of the two, once
    print(f"[sdi twins] two transmitters sent {sent[0]} + {sent[1]} of {INVOICES} invoices")


def test_the_sandbox_down_loses_nothing(tmp_path):
    from webapp import create_app
    from webapp.config import TestConfig
    from webapp.extensions import db
    from webapp.invoicing.models import Invoice, Transmission

    with scratch_databases("shop") as (shop_url,):
        app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": shop_url})
        _seed_invoices(app, 3)
        down = f"http://127.0.0.1:{free_port()}"  # nobody listens
        out = finish(transmitter(shop_url, down, tmp_path / "down.log"), tmp_path / "down.log")
        assert "0 inviate, 3 in attesa" in out
        with app.app_context():
            # the backoff has passed (as the scheduler's next passes would find it)
            db.session.execute(
                Transmission.__table__.update().values(next_try_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
            db.session.commit()
        sandbox = SandboxProcess(tmp_path).start()
        try:
            out = finish(
                transmitter(shop_url, sandbox.url, tmp_path / "up.log"), tmp_path / "up.log"
            )
            files = sandbox.files()
        finally:
            sandbox.stop()
        with app.app_context():
            states = list(db.session.scalars(select(Invoice.sdi_state)))
            db.session.remove()
            db.engine.dispose()
    assert "3 inviate" in out
    assert len(files) == 3
    assert {s.value for s in states} == {"consegnata"}
