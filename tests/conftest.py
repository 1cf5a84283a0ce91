"""Fixtures shared by the unit tests: the shop app on a temporary database, factories, a clock."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import g
from sqlalchemy import create_engine, make_url, text

from tests import suite_speed
from tests.suite_speed import empty_postgres
from webapp import create_app
from webapp.config import TestConfig
from webapp.extensions import db as _db

FIXED_NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


# The suite's speed-ups (compiled templates and URL builders shared, SQLite without fsync).
suite_speed.install()


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker empties tables of its own PostgreSQL database, made here.

    Without xdist, or on SQLite (a file per test), the URL is used as it is.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url.startswith("postgresql") or not worker:
        return url
    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


# `scripts/with-postgres.sh` sets this to run the same tests on PostgreSQL.
PG_URL = _worker_database(os.environ.get("TEST_DATABASE_URL", ""))
_pg_schema_ready = False


def _fresh_postgres() -> None:
    """Empty every table (the schema is created once per run: much faster than per test)."""
    global _pg_schema_ready
    if not _pg_schema_ready:
        _db.drop_all()
        _db.create_all()
        _pg_schema_ready = True
    with _db.engine.begin() as conn:
        empty_postgres(conn)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An empty database with the schema, made once; each test gets a copy (fast)."""
    path = tmp_path_factory.mktemp("template") / "shop.db"
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        _db.create_all()
        _db.engine.dispose()
    return path


@pytest.fixture
def database_url(tmp_path, sqlite_template) -> str:
    if PG_URL:
        return PG_URL
    shutil.copyfile(sqlite_template, tmp_path / "shop.db")
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
def app(database_url):
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url})

    @app.before_request
    def _forget_cached_user() -> None:
        # The app context below stays pushed, so requests share its `g`: without this,
        # Flask-Login's cached user would leak from one client (or login) to the next.
        g.pop("_login_user", None)

    with app.app_context():
        if PG_URL:
            _fresh_postgres()
        yield app
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def db(app):
    return _db


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def create_customer(db):
    from webapp.shop.models import Customer

    def make(email="mario@example.it", name="Mario Rossi", password="password123", billing=True):
        customer = Customer(
            email=email, name=name, tax_code="RSSMRA85T10A562S", email_confirmed_at=FIXED_NOW
        )
        customer.set_password(password)
        db.session.add(customer)
        db.session.flush()
        if billing:  # the checkout asks for billing data first; most tests are past that step
            add_private_billing(customer)
        db.session.commit()
        return customer

    return make


def add_private_billing(customer) -> None:
    """Billing data of a private person in Italy for `customer` (flushed, not committed)."""
    from webapp.shop.models import BillingProfile, CustomerType

    first, _, last = customer.name.partition(" ")
    _db.session.add(
        BillingProfile(
            customer_id=customer.id,
            customer_type=CustomerType.PRIVATE,
            first_name=first,
            last_name=last or first,
            tax_code="RSSMRA85T10A562S",
            address="Via Garibaldi 10",
            postal_code="20121",
            city="Milano",
            province="MI",
            country="IT",
        )
    )
    _db.session.flush()


@pytest.fixture
def dummy_customer(create_customer):
    return create_customer()


@pytest.fixture
def catalogue(db, now):
    """The demo catalogue and discount codes, keyed by SKU / code."""
    from webapp.demo import seed
    from webapp.shop.models import DiscountCode, Product

    seed(now)
    db.session.commit()
    products = {p.sku: p for p in db.session.scalars(_db.select(Product))}
    codes = {c.code: c for c in db.session.scalars(_db.select(DiscountCode))}
    return {"products": products, "codes": codes}


class AuthActions:
    def __init__(self, client):
        self.client = client

    def login(self, email="mario@example.it", password="password123"):
        return self.client.post("/accedi", data={"email": email, "password": password})

    def logout(self):
        return self.client.post("/esci")


@pytest.fixture
def auth(client):
    return AuthActions(client)


class WSGITransport:
    """The gateway client's transport, talking to the bank app in process (no sockets)."""

    def __init__(self, bank_app):
        self.client = bank_app.test_client()
        self.down = False  # set True to simulate the bank being unreachable
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method, url, body, headers, timeout):
        from urllib.parse import urlsplit

        from webapp.payments.gateway import GatewayUnavailable, HttpResponse

        if self.down:
            raise GatewayUnavailable("connection refused (simulated)")
        parts = urlsplit(url)
        self.calls.append((method, parts.path))
        resp = self.client.open(
            parts.path, method=method, data=body, headers=headers, query_string=parts.query
        )
        return HttpResponse(resp.status_code, resp.data, dict(resp.headers))


@pytest.fixture
def bank(app, tmp_path):
    """The mock bank app on its own database, wired to the shop's gateway client."""
    from webapp.bank import create_bank_app

    bank_app = create_bank_app(
        {
            "TESTING": True,
            "BANK_DATABASE_URL": f"sqlite:///{tmp_path / 'bank.db'}",
            "BANK_SHARED_SECRET": app.config["BANK_SHARED_SECRET"],
            "BANK_MERCHANT_ID": app.config["BANK_MERCHANT_ID"],
            "SECRET_KEY": "bank-test",
            "BANK_NOTIFY_ENABLED": False,
        }
    )
    transport = WSGITransport(bank_app)
    app.extensions["gateway"].transport = transport
    bank_app.transport = transport
    yield bank_app
    from webapp.bank.extensions import db as bank_db

    with bank_app.app_context():
        bank_db.session.remove()
        bank_db.engine.dispose()


class SdiWebhook:
    """The sandbox's webhook POSTs delivered into the shop's test client (no sockets)."""

    def __init__(self, shop_app):
        self.client = shop_app.test_client()
        self.answers: list[int] = []
        self.down = False

    def __call__(self, url, data, headers, timeout):
        from types import SimpleNamespace
        from urllib.parse import urlsplit

        if self.down:
            raise ConnectionError("shop unreachable (simulated)")
        resp = self.client.post(urlsplit(url).path, data=data, headers=headers)
        self.answers.append(resp.status_code)
        return SimpleNamespace(status_code=resp.status_code)


@pytest.fixture
def sdi(app, tmp_path):
    """The SdI · Sandbox on its own database, wired to the shop's SdI gateway client; its
    clock is `sdi.clock` (move it with `sdi.clock.advance(days)`), its webhooks are delivered
    by `sdi.push()` into the shop."""
    from webapp.sdi import create_sdi_app

    clock = SdiClock(FIXED_NOW)
    sdi_app = create_sdi_app(
        {
            "TESTING": True,
            "SDI_DATABASE_URL": f"sqlite:///{tmp_path / 'sdi.db'}",
            "SDI_SHARED_SECRET": app.config["SDI_SHARED_SECRET"],
            "SDI_CLIENT_ID": app.config["SDI_CLIENT_ID"],
            "SDI_NOTIFY_ENABLED": False,
            "SDI_WEBHOOK_URL": "http://shop.test/sdi/notifiche",
            "SDI_CLOCK": clock,
        }
    )
    transport = WSGITransport(sdi_app)
    webhook = SdiWebhook(app)
    sdi_app.config["SDI_NOTIFY_POST"] = webhook
    app.extensions["sdi_gateway"].transport = transport
    sdi_app.transport = transport
    sdi_app.webhook = webhook
    sdi_app.clock = clock

    def push() -> int:
        """Run the sandbox's notifier once (deadlines, then webhooks), as its thread would."""
        from webapp.sdi.extensions import db as sdi_db
        from webapp.sdi.notifier import deliver_due
        from webapp.sdi.services import tick

        with sdi_app.app_context():
            tick(clock())
            sdi_db.session.commit()
            return deliver_due(clock())

    sdi_app.push = push
    yield sdi_app
    from webapp.sdi.extensions import db as sdi_db

    with sdi_app.app_context():
        sdi_db.session.remove()
        sdi_db.engine.dispose()


class SdiClock:
    """The sandbox's clock in tests: fixed, moved forward by `advance(days)`."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, days: float) -> None:
        from datetime import timedelta

        self.now += timedelta(days=days)
