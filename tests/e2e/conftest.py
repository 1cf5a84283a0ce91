"""The system under test: a deployment (BASE_URL, BANK_URL, SANDBOX_TOKEN), or the mail sink,
mock bank and shop that this file starts on loopback servers. Either way the tests drive it
through the browser and read its state only through pages and the sandbox APIs."""

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
from tests.e2e.deployment import DEMO, Sandbox, register_customer
from webapp.mailsink import MailSink

CHROMIUM = Path("/usr/bin/chromium")
BANK_SECRET = "e2e-bank-secret"
SDI_SECRET = "e2e-sdi-secret"
MERCHANT_ID = "pec-shop"
SANDBOX_TOKEN = "e2e-sandbox-token"
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


def deployment_url(config: pytest.Config) -> str | None:
    """`--base-url` (or BASE_URL): run against that deployment instead of live servers."""
    return config.getoption("--base-url", None) or os.environ.get("BASE_URL") or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is a browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On failure keep each open page's HTML next to pytest-playwright's trace and screenshot,
    and link them from the HTML report (pytest-html, `make qa`)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
        _save_pages(item)
    elif report.when == "teardown" and item.stash.get(FAILED, False):
        # pytest-playwright writes the trace and the screenshot when its fixtures end.
        _link_artifacts(item, report)


FAILED = pytest.StashKey[bool]()


def _artifacts_folder(item: pytest.Item) -> Path:
    from pytest_playwright.pytest_playwright import _truncate_file_name, slugify

    folder = Path(item.config.getoption("--output")).absolute()
    return folder / _truncate_file_name(slugify(item.nodeid))


def _save_pages(item: pytest.Item) -> None:
    folder = _artifacts_folder(item)
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


def _link_artifacts(item: pytest.Item, report: pytest.TestReport) -> None:
    html_path = getattr(item.config.option, "htmlpath", None)
    folder = _artifacts_folder(item)
    if not html_path or not folder.is_dir():
        return
    from pytest_html import extras

    base = Path(html_path).absolute().parent
    # pytest-playwright links the trace itself ("Trace"); the screenshots and pages are ours.
    kinds = (("screenshot", "*.png"), ("pagina", "page-*.html"))
    links = [
        extras.url(os.path.relpath(found, base), name=f"{label}: {found.name}")
        for label, pattern in kinds
        for found in sorted(folder.glob(pattern))
    ]
    report.extras = [*getattr(report, "extras", []), *links]


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
    """The running system: its URLs and sandbox; the apps themselves only when started here
    (to fail a test on a server error), never for reading state."""

    shop_url: str
    bank_url: str
    sandbox: Sandbox
    app: Flask | None = None
    bank_app: Flask | None = None
    errors: list[str] = field(default_factory=list)
    sdi_url: str = ""
    sdi_app: Flask | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _closed_before_sending(app):
    """The app's answer read whole and closed before the server writes it. werkzeug's
    development server skips close() when the browser drops the connection while it drains the
    request (Chromium does for the favicon), so a static file's handle was left to the garbage
    collector and surfaced as a ResourceWarning in whichever test ran next."""

    def wsgi(environ, start_response):
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()

    return wsgi


def _serve(app) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, _closed_before_sending(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _deployment(base_url: str) -> Live:
    """A deployment set up for QA: its bank's URL and the sandboxes' token from the env."""
    shop_url = base_url.rstrip("/")
    bank_url = os.environ.get("BANK_URL", "http://127.0.0.1:5001").rstrip("/")
    token = os.environ.get("SANDBOX_TOKEN", "")
    if not token:
        pytest.fail("against a deployment set SANDBOX_TOKEN (make run prints it)", False)
    sandbox = Sandbox(shop_url, bank_url, token)
    try:
        sandbox.check()
    except Exception as exc:
        message = f"the deployment's sandbox does not answer (SANDBOX=1, SANDBOX_TOKEN?): {exc}"
        pytest.fail(message, False)
    return Live(shop_url, bank_url, sandbox)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Live]:
    """One live system per session: tests use fresh customers, so they do not interfere.

    With --base-url (make qa BASE_URL=... BANK_URL=... SANDBOX_TOKEN=...) nothing is started:
    the tests drive that deployment and read its state through its sandbox APIs.
    """
    remote = deployment_url(pytestconfig)
    if remote:
        deployment = _deployment(remote)
        deployment.sdi_url = os.environ.get("SDI_URL", "http://127.0.0.1:5002").rstrip("/")
        yield deployment
        return
    from webapp import create_app
    from webapp.bank import create_bank_app
    from webapp.bank.extensions import db as bank_db
    from webapp.clock import now_utc
    from webapp.config import TestConfig
    from webapp.demo import seed
    from webapp.extensions import db
    from webapp.sdi import create_sdi_app
    from webapp.sdi.extensions import db as sdi_db

    folder = tmp_path_factory.mktemp("e2e")
    sink = MailSink(port=_free_port()).start()

    bank_app = create_bank_app(
        {
            "BANK_DATABASE_URL": f"sqlite:///{folder / 'bank.db'}",
            "BANK_SHARED_SECRET": BANK_SECRET,
            "BANK_MERCHANT_ID": MERCHANT_ID,
            "SECRET_KEY": "e2e-bank-session",
            "BANK_NOTIFY_ENABLED": True,
            "SANDBOX": True,
            "SANDBOX_TOKEN": SANDBOX_TOKEN,
        }
    )
    bank_server, bank_thread = _serve(bank_app)
    bank_url = f"http://127.0.0.1:{bank_server.server_port}"

    deferred = _Deferred()
    shop_server, shop_thread = _serve(deferred)
    shop_url = f"http://127.0.0.1:{shop_server.server_port}"
    # The SdI · Sandbox, its notifications pushed to the shop's webhook (and read by cursor).
    sdi_app = create_sdi_app(
        {
            "SDI_DATABASE_URL": f"sqlite:///{folder / 'sdi.db'}",
            "SDI_SHARED_SECRET": SDI_SECRET,
            "SDI_CLIENT_ID": MERCHANT_ID,
            "SDI_WEBHOOK_URL": f"{shop_url}/sdi/notifiche",
            "SDI_NOTIFY_ENABLED": True,
        }
    )
    sdi_server, sdi_thread = _serve(sdi_app)
    sdi_url = f"http://127.0.0.1:{sdi_server.server_port}"
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
            "SDI_API_URL": sdi_url,
            "SDI_SHARED_SECRET": SDI_SECRET,
            "SDI_CLIENT_ID": MERCHANT_ID,
            "WTF_CSRF_ENABLED": True,
            "RATELIMIT_ENABLED": False,
            "SANDBOX": True,
            "SANDBOX_TOKEN": SANDBOX_TOKEN,
        },
    )
    with app.app_context():
        if PG_URL:
            db.drop_all()
        db.create_all()
        seed(now_utc())
        db.session.commit()
    deferred.app = app

    sandbox = Sandbox(shop_url, bank_url, SANDBOX_TOKEN)
    system = Live(shop_url, bank_url, sandbox, app, bank_app, sdi_url=sdi_url, sdi_app=sdi_app)

    def record(sender: Flask, exception: BaseException, **_) -> None:
        system.errors.append(f"{sender.name}: {exception!r}")

    got_request_exception.connect(record, app)
    got_request_exception.connect(record, bank_app)
    got_request_exception.connect(record, sdi_app)
    yield system

    got_request_exception.disconnect(record, app)
    got_request_exception.disconnect(record, bank_app)
    got_request_exception.disconnect(record, sdi_app)
    servers = ((shop_server, shop_thread), (bank_server, bank_thread), (sdi_server, sdi_thread))
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)
    for notifier in (
        bank_app.extensions.get("bank_notifier"),
        sdi_app.extensions.get("sdi_notifier"),
    ):
        if notifier is not None:
            notifier.stop()
            notifier.join(5)
    sink.stop()
    with app.app_context():
        db.engine.dispose()
    with bank_app.app_context():
        bank_db.engine.dispose()
    with sdi_app.app_context():
        sdi_db.engine.dispose()


def _transmit_through_the_sandbox(live: Live) -> Iterator[None]:
    """Against a deployment: the invoice job's pass through the sandbox API every second."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                live.sandbox.transmit_invoices()
            except Exception as exc:  # a failing pass fails the test that caused it
                live.errors.append(f"sandbox transmit: {exc!r}")
            stop.wait(1.0)

    thread = threading.Thread(target=loop, name="e2e-sdi-sandbox", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)


@pytest.fixture
def sdi_scheduler(live: Live) -> Iterator[None]:
    """The scheduler's invoice job (`flask invoices transmit`) every half second, for the test.

    Against a deployment its own scheduler does it (every minute): nothing is started.
    """
    if live.app is None:  # a deployment: its scheduler runs each minute; the sandbox now
        yield from _transmit_through_the_sandbox(live)
        return
    from webapp.clock import now_utc
    from webapp.extensions import db
    from webapp.invoicing.sdi_jobs import transmit_pass

    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with live.app.app_context():
                try:
                    transmit_pass(now_utc())
                except Exception as exc:  # a failing pass fails the test that caused it
                    live.errors.append(f"transmit_pass: {exc!r}")
                finally:
                    db.session.remove()
            stop.wait(0.5)

    thread = threading.Thread(target=loop, name="e2e-sdi-scheduler", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


@pytest.fixture(autouse=True)
def no_server_errors(live: Live) -> Iterator[None]:
    """An unhandled exception in either server fails the test that caused it."""
    live.errors.clear()
    yield
    assert not live.errors, f"server errors: {live.errors}"


@dataclass(frozen=True)
class Customer:
    email: str
    password: str
    name: str
    mail_floor: int = 0  # the e-mails up to this outbox id came with the registration


@pytest.fixture
def make_customer(live: Live) -> Callable[..., Customer]:
    """Fresh customers (no cart, no cards, no orders), registered through the shop's pages."""

    def make(name: str = "Mario Rossi", billing: bool = True) -> Customer:
        email = f"cliente-{uuid.uuid4().hex[:10]}@example.it"
        password = "password123"
        register_customer(live.sandbox, name, email, password, billing)
        floor = max((m["id"] for m in live.sandbox.emails(email)), default=0)
        return Customer(email, password, name, floor)

    return make


@pytest.fixture
def demo_customer() -> Customer:
    """The demo account that `flask seed-demo` creates (see the README)."""
    return Customer(*DEMO)


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
