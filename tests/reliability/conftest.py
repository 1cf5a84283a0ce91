"""Fixtures of the reliability suite: real processes on PostgreSQL, a mock bank process, seeding.

The process tests (`system`) get two scratch databases on the PostgreSQL server of
`scripts/with-postgres.sh` (the shop's and the bank's), seed them directly, run
`flask renewals run` as real OS processes against a `python -m webapp.bank` process, and count
what each side recorded. Without PostgreSQL they are skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]
PG = PG_URL.startswith("postgresql")
requires_postgres = pytest.mark.skipif(
    not PG,
    reason="real processes need PostgreSQL: "
    "scripts/with-postgres.sh .venv/bin/pytest tests/reliability -m reliability",
)
SECRET = "reliability-bank-secret"
MERCHANT = "pec-shop"
GOOD_PAN = "4242424242424242"  # frictionless success at the mock bank
PROCESS_TIMEOUT = 120


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# --- scratch databases on the test PostgreSQL server ----------------------------------------------


@contextlib.contextmanager
def scratch_databases(*names: str) -> Iterator[list[str]]:
    """Create empty databases next to TEST_DATABASE_URL's; drop them (and their sessions) after."""
    import psycopg

    base = make_url(PG_URL)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    suffix = uuid.uuid4().hex[:8]
    created = [f"rel_{name}_{suffix}" for name in names]
    with psycopg.connect(admin, autocommit=True) as conn:
        for db_name in created:
            conn.execute(f'CREATE DATABASE "{db_name}"')
    try:
        yield [base.set(database=n).render_as_string(hide_password=False) for n in created]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for db_name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@pytest.fixture
def bank_database_url(tmp_path: Path) -> Iterator[str]:
    """The bank's own database: a scratch PostgreSQL database when there is one, else SQLite."""
    if not PG:
        yield f"sqlite:///{tmp_path / 'bank.db'}"
        return
    with scratch_databases("bank") as (url,):
        yield url


class LiveBank:
    """A bank app served on a fixed loopback port: stop() makes it unreachable, start() is back."""

    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> LiveBank:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
        self.server = self.thread = None


def dispose_bank(bank_app) -> None:
    """Close the bank app's database connections (a scratch database is dropped after)."""
    from webapp.bank.extensions import db as bank_db

    with bank_app.app_context():
        bank_db.session.remove()
        bank_db.engine.dispose()


# --- processes ------------------------------------------------------------------------------------


def _env(**values: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "WERKZEUG_"))}
    env.update({k: str(v) for k, v in values.items()})
    return env


class BankProcess:
    """The mock bank as its own process (`python -m webapp.bank`) on a fixed port."""

    def __init__(self, database_url: str, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> BankProcess:
        env = _env(
            BANK_DATABASE_URL=self.database_url,
            BANK_SHARED_SECRET=SECRET,
            BANK_MERCHANT_ID=MERCHANT,
            BANK_NOTIFY_ENABLED=0,
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "webapp.bank", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._listening, 30, f"the bank on port {self.port}")
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"the bank exited with {self.proc.returncode}:\n{self.log.read_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        """SIGKILL: requests in flight are cut, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


REPORT_RE = re.compile(r"([a-z ]+?) (\d+)(?:,|$)")


def parse_report(output: str) -> dict[str, int]:
    """The counters of `flask renewals run`'s last line, e.g. {'addebitati': 12, ...}."""
    line = [ln for ln in output.splitlines() if ln.startswith("Passata rinnovi")][-1]
    return {k.strip(): int(v) for k, v in REPORT_RE.findall(line.split(": ", 1)[1])}


class System:
    """Shop and bank databases, the apps used to seed and count, and the processes."""

    def __init__(self, shop_url: str, bank_url: str, folder: Path):
        from webapp import create_app
        from webapp.bank import create_bank_app
        from webapp.config import TestConfig

        self.shop_url = shop_url
        self.folder = folder
        self.app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": shop_url})
        self.bank_app = create_bank_app(
            {
                "TESTING": True,
                "BANK_DATABASE_URL": bank_url,
                "BANK_SHARED_SECRET": SECRET,
                "BANK_MERCHANT_ID": MERCHANT,
                "BANK_NOTIFY_ENABLED": False,
            }
        )
        self.bank = BankProcess(bank_url, folder / "bank.log")
        self.procs: list[subprocess.Popen] = []

    # --- renewal passes as OS processes
    def renewals(
        self, worker: str, as_of: str, bank_url: str | None = None, **env: object
    ) -> subprocess.Popen:
        """Start `flask renewals run --as-of` in its own process: stdout piped, the log in a
        file (a pass that logs much would block on a full pipe while holding its locks, and
        its twin would wait on them for ever)."""
        log_path = self.folder / f"renewals-{worker}-{len(self.procs)}.log"
        with log_path.open("w") as log:  # the child keeps its own handle
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flask",
                    "--app",
                    "wsgi",
                    "renewals",
                    "run",
                    "--as-of",
                    as_of,
                    "--worker",
                    worker,
                ],
                cwd=ROOT,
                env=_env(
                    DATABASE_URL=self.shop_url,
                    BANK_API_URL=bank_url or self.bank.url,
                    BANK_SHARED_SECRET=SECRET,
                    BANK_MERCHANT_ID=MERCHANT,
                    BANK_TIMEOUT_SECONDS=5,
                    MAIL_SUPPRESS_SEND=1,
                    **env,
                ),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen) -> dict[str, int]:
        """Wait for a pass to end; its report's counters (the pass must exit 0)."""
        out, _ = proc.communicate(timeout=PROCESS_TIMEOUT)
        if proc.returncode != 0:
            log = proc.log_path.read_text()[-3000:]
            pytest.fail(f"exit {proc.returncode}\n{out}\n{log}")
        return parse_report(out)

    def run(self, worker: str, as_of: str, **kw: object) -> dict[str, int]:
        return self.finish(self.renewals(worker, as_of, **kw))

    # --- seeding
    def seed_due_services(self, n: int, expires_at: datetime) -> list[int]:
        """n customers, each with one auto-renewing PEC service due, a card the bank knows."""
        from webapp.bank.extensions import db as bank_db
        from webapp.bank.models import Card
        from webapp.demo import seed
        from webapp.extensions import db
        from webapp.payments.models import SavedCard
        from webapp.renewals.models import Service
        from webapp.shop.models import Customer, PaymentMethod, Product
        from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus

        now = datetime.now(UTC)
        exp_year = now.year + 5
        seed(now)
        product = db.session.scalar(select(Product).where(Product.sku == "PEC-STD"))
        started = expires_at - timedelta(days=365)
        tag = uuid.uuid4().hex[:6]
        tokens = [f"tok_rel_{tag}_{i}" for i in range(n)]

        def ids(model, rows):
            stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
            return list(db.session.scalars(stmt, rows))

        customers = ids(
            Customer,
            [
                dict(
                    email=f"rel-{tag}-{i}@example.it",
                    name=f"Cliente {i}",
                    tax_code="RSSMRA85T10A562S",
                    password_hash="!",
                )
                for i in range(n)
            ],
        )
        cards = ids(
            SavedCard,
            [
                dict(
                    customer_id=c,
                    gateway_token=t,
                    brand="visa",
                    last4=GOOD_PAN[-4:],
                    exp_month=12,
                    exp_year=exp_year,
                    holder="Cliente",
                )
                for c, t in zip(customers, tokens, strict=True)
            ],
        )
        net = product.yearly_price_cents
        vat = round(net * 22 / 100)
        orders = ids(
            Order,
            [
                dict(
                    customer_id=c,
                    kind=OrderKind.PURCHASE,
                    status=OrderStatus.PAID,
                    payment_method=PaymentMethod.CARD,
                    subtotal_cents=net,
                    discount_cents=0,
                    net_cents=net,
                    vat_cents=vat,
                    total_cents=net + vat,
                    created_at=started,
                    paid_at=started,
                )
                for c in customers
            ],
        )
        lines = ids(
            OrderLine,
            [
                dict(
                    order_id=o,
                    product_id=product.id,
                    product_name=product.name,
                    kind=product.kind,
                    years=1,
                    yearly_price_cents=net,
                    list_cents=net,
                    discount_cents=0,
                    net_cents=net,
                    auto_renew=True,
                )
                for o in orders
            ],
        )
        services = ids(
            Service,
            [
                dict(
                    customer_id=c,
                    product_id=product.id,
                    order_line_id=ln,
                    started_at=started,
                    expires_at=expires_at,
                    auto_renew=True,
                    frequency_years=1,
                    saved_card_id=card,
                )
                for c, ln, card in zip(customers, lines, cards, strict=True)
            ],
        )
        db.session.commit()
        with self.bank_app.app_context():
            bank_db.session.execute(
                insert(Card),
                [
                    dict(
                        token=t,
                        pan=GOOD_PAN,
                        brand="visa",
                        last4=GOOD_PAN[-4:],
                        exp_month=12,
                        exp_year=exp_year,
                        holder="Cliente",
                        created_at=now,
                    )
                    for t in tokens
                ],
            )
            bank_db.session.commit()
        return services

    # --- what each side recorded
    def bank_charges(self) -> list[tuple[str, str, str, int]]:
        """(idempotency_key, order_ref, status, amount) of every charge at the bank."""
        from webapp.bank.extensions import db as bank_db
        from webapp.bank.models import Charge

        with self.bank_app.app_context():
            rows = bank_db.session.execute(
                select(Charge.idempotency_key, Charge.order_ref, Charge.status, Charge.amount_cents)
            ).all()
            bank_db.session.remove()
        return [(k, ref, str(status), amount) for k, ref, status, amount in rows]

    def bank_charge_count(self) -> int:
        from webapp.bank.extensions import db as bank_db
        from webapp.bank.models import Charge

        with self.bank_app.app_context():
            count = bank_db.session.scalar(select(func.count(Charge.id)))
            bank_db.session.remove()
        return count

    def shop_count(self, stmt) -> int:
        from webapp.extensions import db

        db.session.rollback()  # a fresh snapshot: other processes are writing
        return db.session.scalar(stmt)

    def close(self) -> None:
        from webapp.bank.extensions import db as bank_db
        from webapp.extensions import db

        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            if proc.returncode is None or not (proc.stdout is None or proc.stdout.closed):
                proc.communicate(timeout=10)  # reap it and close its pipes
        self.bank.kill()
        db.session.remove()
        db.engine.dispose()
        with self.bank_app.app_context():
            bank_db.session.remove()
            bank_db.engine.dispose()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """Fresh shop and bank databases on PostgreSQL, the shop's app context pushed."""
    if not PG:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL=postgresql+psycopg://...)")
    from webapp.extensions import db

    with scratch_databases("shop", "bank") as (shop_url, bank_url):
        sys_ = System(shop_url, bank_url, tmp_path)
        with sys_.app.app_context():
            db.create_all()
            try:
                yield sys_
            finally:
                sys_.close()


@pytest.fixture
def world(app, client, bank, catalogue, create_customer):
    """Two furnished customers in the shop (in-process bank), the first one logged in."""
    from tests.reliability.shopworld import build_world

    return build_world(client, bank, catalogue, create_customer)


def pytest_terminal_summary(terminalreporter) -> None:
    """The figures of the twin harness and of the URL-map fuzz, so CI logs show them."""
    _twins_summary(terminalreporter)
    _fuzz_summary(terminalreporter)


def _twins_summary(terminalreporter) -> None:
    twins = sys.modules.get("tests.reliability.twins")
    if twins is None or not twins.TALLY.actions:
        return
    terminalreporter.section("twins")
    for line in twins.TALLY.lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(twins.TALLY.summary())


def _fuzz_summary(terminalreporter) -> None:
    from tests.reliability.urlmap import TALLIES

    if not TALLIES:
        return
    terminalreporter.section("fuzz dalla URL map")
    total = 0
    total5 = 0
    for name, tally in TALLIES.items():
        total += tally.requests
        total5 += tally.n5xx
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(tally.statuses.items()))
        terminalreporter.write_line(
            f"{name}: {tally.requests} requests, {tally.n5xx} 5xx ({codes})"
        )
    terminalreporter.write_line(f"fuzz: {total} requests, {total5} 5xx")
    if os.environ.get("FUZZ_BY_RULE"):
        for name, tally in TALLIES.items():
            for (rule, method, status), n in sorted(tally.by_rule.items()):
                terminalreporter.write_line(f"  {name} {method} {rule} {status}: {n}")
