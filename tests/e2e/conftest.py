"""The live system for the browser tests: mail sink, mock bank and shop on loopback servers."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask, got_request_exception
from playwright.sync_api import BrowserContext, Page, expect
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import PG_URL
from webapp.mailsink import MailSink

CHROMIUM = Path("/usr/bin/chromium")
BANK_SECRET = "e2e-bank-secret"
MERCHANT_ID = "pec-shop"
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is a browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian's Chromium when present (Playwright's own download is not available here)."""
    args = {
        **browser_type_launch_args,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }
    if CHROMIUM.exists():
        args["executable_path"] = str(CHROMIUM)
    return args


@pytest.fixture(scope="session")
def base_url(live: Live) -> str:
    """Relative URLs go to the shop (this also replaces pytest-playwright's own fixture)."""
    return live.shop_url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "locale": "it-IT"}


@pytest.fixture
def context(context: BrowserContext) -> BrowserContext:
    context.set_default_timeout(TIMEOUT_MS)
    return context


class _Deferred:
    """A WSGI app set after the server is bound: the shop must know its own URL when built."""

    app: Flask | None = None

    def __call__(self, environ, start_response):
        assert self.app is not None
        return self.app(environ, start_response)


@dataclass
class Live:
    """The running system: URLs, the mail sink, and both apps for assertions on their data."""

    shop_url: str
    bank_url: str
    sink: MailSink
    app: Flask
    bank_app: Flask
    errors: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One live system per session: tests use fresh customers, so they do not interfere."""
    from webapp import create_app
    from webapp.bank import create_bank_app
    from webapp.bank.extensions import db as bank_db
    from webapp.clock import now_utc
    from webapp.config import TestConfig
    from webapp.demo import seed
    from webapp.extensions import db

    folder = tmp_path_factory.mktemp("e2e")
    sink = MailSink(port=_free_port()).start()

    bank_app = create_bank_app(
        {
            "BANK_DATABASE_URL": f"sqlite:///{folder / 'bank.db'}",
            "BANK_SHARED_SECRET": BANK_SECRET,
            "BANK_MERCHANT_ID": MERCHANT_ID,
            "SECRET_KEY": "e2e-bank-session",
            "BANK_NOTIFY_ENABLED": True,
        }
    )
    bank_server, bank_thread = _serve(bank_app)
    bank_url = f"http://127.0.0.1:{bank_server.server_port}"

    deferred = _Deferred()
    shop_server, shop_thread = _serve(deferred)
    shop_url = f"http://127.0.0.1:{shop_server.server_port}"
    app = create_app(
        TestConfig,
        {
            # The shop runs on PostgreSQL when scripts/with-postgres.sh provides one.
            "SQLALCHEMY_DATABASE_URI": PG_URL or f"sqlite:///{folder / 'shop.db'}",
            "MAIL_SUPPRESS_SEND": False,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": sink.port,
            "SHOP_BASE_URL": shop_url,
            "BANK_API_URL": bank_url,
            "BANK_SHARED_SECRET": BANK_SECRET,
            "BANK_MERCHANT_ID": MERCHANT_ID,
            "WTF_CSRF_ENABLED": True,
            "RATELIMIT_ENABLED": False,
        },
    )
    with app.app_context():
        if PG_URL:
            db.drop_all()
        db.create_all()
        seed(now_utc())
        db.session.commit()
    deferred.app = app

    system = Live(shop_url, bank_url, sink, app, bank_app)

    def record(sender: Flask, exception: BaseException, **_) -> None:
        system.errors.append(f"{sender.name}: {exception!r}")

    got_request_exception.connect(record, app)
    got_request_exception.connect(record, bank_app)
    yield system

    got_request_exception.disconnect(record, app)
    got_request_exception.disconnect(record, bank_app)
    for server, thread in ((shop_server, shop_thread), (bank_server, bank_thread)):
        server.shutdown()
        server.server_close()
        thread.join(5)
    notifier = bank_app.extensions.get("bank_notifier")
    if notifier is not None:
        notifier.stop()
        notifier.join(5)
    sink.stop()
    with app.app_context():
        db.engine.dispose()
    with bank_app.app_context():
        bank_db.engine.dispose()


@pytest.fixture(autouse=True)
def no_server_errors(live: Live) -> Iterator[None]:
    """An unhandled exception in either server fails the test that caused it."""
    live.errors.clear()
    yield
    assert not live.errors, f"server errors: {live.errors}"


@dataclass(frozen=True)
class Customer:
    id: int
    email: str
    password: str
    name: str


@pytest.fixture
def make_customer(live: Live) -> Callable[..., Customer]:
    """Create fresh customers (no cart, no cards, no orders) in the shop's database."""
    from webapp.extensions import db
    from webapp.shop.models import Customer as CustomerModel

    def make(name: str = "Mario Rossi", billing: bool = True) -> Customer:
        from tests.conftest import add_private_billing

        email = f"cliente-{uuid.uuid4().hex[:10]}@example.it"
        password = "password123"
        with live.app.app_context():
            customer = CustomerModel(email=email, name=name, tax_code="RSSMRA85T10A562S")
            customer.set_password(password)
            db.session.add(customer)
            db.session.flush()
            if billing:  # past the checkout's billing data step; test_invoice_e2e fills it
                add_private_billing(customer)
            db.session.commit()
            return Customer(customer.id, email, password, customer.name)

    return make


@pytest.fixture
def new_customer(make_customer: Callable[..., Customer]) -> Customer:
    return make_customer()


@pytest.fixture
def login() -> Callable[[Page, Customer], None]:
    """Log a customer in through the login page."""

    def do_login(page: Page, customer: Customer) -> None:
        page.goto("/accedi")
        page.get_by_label("E-mail").fill(customer.email)
        page.get_by_label("Password").fill(customer.password)
        page.get_by_role("button", name="Accedi").click()
        expect(page.get_by_role("button", name=f"Esci ({customer.name})")).to_be_visible()

    return do_login
