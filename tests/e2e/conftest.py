"""The live system for the browser tests: mail sink, mock bank and shop on loopback servers."""

from __future__ import annotations

import os
import re
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
from tests.e2e.deployment import DEMO, DirSink, NoSink, confirm_address, register_customer
from webapp.mailsink import MailSink

CHROMIUM = Path("/usr/bin/chromium")
BANK_SECRET = "e2e-bank-secret"
MERCHANT_ID = "pec-shop"
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


# Modules that drive the renewal clock or read both databases throughout: not against a deployment.
LOCAL_ONLY = {
    "test_renewal_pass.py": "drives the renewal clock (flask renewals run --as-of)",
    "test_area_auto_renew.py": "drives the renewal clock and reads the shop's database",
    "test_double_click.py": "counts charges in the bank's and the shop's databases",
}


def deployment_url(config: pytest.Config) -> str | None:
    """`--base-url` (or BASE_URL): run against that deployment instead of live servers."""
    return config.getoption("--base-url", None) or os.environ.get("BASE_URL") or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is a browser test; some need the local servers."""
    here = Path(__file__).parent
    remote = deployment_url(config)
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
            why = LOCAL_ONLY.get(Path(item.path).name)
            if remote and why:
                item.add_marker(pytest.mark.skip(reason=f"against a deployment: this test {why}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On failure keep each open page's HTML next to pytest-playwright's trace and screenshot."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    from pytest_playwright.pytest_playwright import _truncate_file_name, slugify

    folder = Path(item.config.getoption("--output")).absolute()
    folder = folder / _truncate_file_name(slugify(item.nodeid))
    pages = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Page)]
    for index, page in enumerate(pages):
        for number, open_page in enumerate(p for p in page.context.pages if not p.is_closed()):
            try:
                html = open_page.content()
            except Exception as exc:  # a page gone mid-navigation must not hide the failure
                html = f"<!-- page content not available: {exc!r} -->"
            folder.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^a-z0-9]+", "-", open_page.url.lower()).strip("-")[-60:]
            (folder / f"page-{index}-{number}-{name}.html").write_text(html, encoding="utf-8")


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
    sink: MailSink | DirSink | NoSink
    app: Flask | None
    bank_app: Flask | None
    errors: list[str] = field(default_factory=list)
    remote: bool = False


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
def live(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Live]:
    """One live system per session: tests use fresh customers, so they do not interfere.

    With --base-url (make e2e BASE_URL=... BANK_URL=...) nothing is started: the tests drive
    that deployment, its demo data, and read e-mails from MAIL_DIR if given.
    """
    remote = deployment_url(pytestconfig)
    if remote:
        bank_url = os.environ.get("BANK_URL", "http://127.0.0.1:5001").rstrip("/")
        mail_dir = os.environ.get("MAIL_DIR")
        sink = DirSink(Path(mail_dir)) if mail_dir else NoSink()
        yield Live(remote.rstrip("/"), bank_url, sink, None, None, remote=True)
        return
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
        from webapp.clock import now_utc

        email = f"cliente-{uuid.uuid4().hex[:10]}@example.it"
        password = "password123"
        if live.remote:  # a deployment: register through its own form, as a customer would
            register_customer(live.shop_url, name, email, password)
            confirm_address(live.sink, email)  # orders need a confirmed address
            return Customer(None, email, password, name)  # type: ignore[arg-type]
        assert live.app is not None
        with live.app.app_context():
            customer = CustomerModel(
                email=email, name=name, tax_code="RSSMRA85T10A562S", email_confirmed_at=now_utc()
            )
            customer.set_password(password)
            db.session.add(customer)
            db.session.flush()
            if billing:  # past the checkout's billing data step; test_invoice_e2e fills it
                add_private_billing(customer)
            db.session.commit()
            return Customer(customer.id, email, password, customer.name)

    return make


@pytest.fixture
def demo_customer() -> Customer:
    """The demo account that `flask seed-demo` creates (see the README)."""
    return Customer(None, *DEMO)  # type: ignore[arg-type]


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
