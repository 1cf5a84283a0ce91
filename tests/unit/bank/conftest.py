"""Fixtures for the mock bank: an app on a temporary SQLite file, a fixed clock, helpers."""

from __future__ import annotations

import html
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

# The project root must be importable even when pytest runs without an installed package.
ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from webapp.bank import create_bank_app  # noqa: E402
from webapp.bank.extensions import db  # noqa: E402
from webapp.signing import sign_request  # noqa: E402

SECRET = "test-bank-secret"
MERCHANT = "pec-shop"
FIXED_NOW = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)
RETURN_URL = "http://shop.test/pagamenti/ritorno"
NOTIFY_URL = "http://shop.test/pagamenti/notifica"


class Clock:
    """A settable clock for BANK_CLOCK."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(FIXED_NOW)


@pytest.fixture
def make_app(tmp_path: Any, clock: Clock) -> Iterator[Callable[..., Flask]]:
    """Build bank apps on a temporary database; their engines are disposed at teardown."""
    apps: list[Flask] = []

    def _make(**overrides: Any) -> Flask:
        config = {
            "TESTING": True,
            "BANK_DATABASE_URL": f"sqlite:///{tmp_path / 'bank.db'}",
            "BANK_SHARED_SECRET": SECRET,
            "BANK_MERCHANT_ID": MERCHANT,
            "SECRET_KEY": "test-session-key",
            "BANK_NOTIFY_ENABLED": False,
            "BANK_CLOCK": clock,
        }
        app = create_bank_app(config | overrides)
        apps.append(app)
        return app

    yield _make
    for app in apps:
        thread = app.extensions.get("bank_notifier")
        if thread is not None:
            thread.stop()
            thread.join(5)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Api:
    """Signed JSON calls, as the shop's gateway client makes them."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        secret: str = SECRET,
        merchant: str = MERCHANT,
        ts: int | None = None,
        signed: bool = True,
    ) -> TestResponse:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if signed:
            stamp = int(time.time()) if ts is None else ts
            headers |= sign_request(secret, merchant, method, path, raw, stamp)
        return self.client.open(path, method=method, data=raw, headers=headers)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: dict[str, Any], **kw: Any) -> TestResponse:
        return self.call("POST", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.call("DELETE", path, **kw)


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)


def _payment_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "amount_cents": 123456,
        "currency": "EUR",
        "order_ref": "ORD-0001",
        "description": "PEC Pro, 1 anno",
        "return_url": RETURN_URL,
        "notify_url": None,
        "save_card": True,
        "idempotency_key": "pay-ORD-0001-1",
    }
    return body | overrides


@pytest.fixture
def payment_body() -> Callable[..., dict[str, Any]]:
    """A valid POST /api/payments body, with overrides."""
    return _payment_body


def _creator(api: Api) -> Callable[..., str]:
    def _create(**overrides: Any) -> str:
        response = api.post("/api/payments", _payment_body(**overrides))
        assert response.status_code == 201, response.json
        return response.json["payment_id"]

    return _create


@pytest.fixture
def create_payment(api: Api) -> Callable[..., str]:
    """Create a hosted payment through the API; returns its id."""
    return _creator(api)


class Customer:
    """The customer on the hosted pages (CSRF token read from the pages, as a browser would)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token: str | None = None

    def get(self, url: str, **kw: Any) -> TestResponse:
        response = self.client.get(url, **kw)
        found = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        if found:
            self.token = found.group(1)
        return response

    def post(self, url: str, data: dict[str, str] | None = None) -> TestResponse:
        assert self.token, "open a page with a form first (it holds the CSRF token)"
        form = {"csrf_token": self.token} | (data or {})
        return self.client.post(url, data=form)

    def enter_card(
        self,
        pid: str,
        number: str,
        *,
        holder: str = "Mario Rossi",
        month: str = "12",
        year: str = "2030",
        cvv: str | None = None,
    ) -> TestResponse:
        """Open the card page and click Procedi."""
        self.get(f"/pay/{pid}")
        if cvv is None:
            cvv = "1234" if number.startswith("3") else "123"
        data = {"holder": holder, "number": number, "exp_month": month, "exp_year": year}
        return self.post(f"/pay/{pid}", data | {"cvv": cvv})

    def confirm(self, pid: str) -> TestResponse:
        """Click Invio dati on the summary."""
        return self.post(f"/pay/{pid}/confirm")

    def otp_code(self, pid: str) -> str:
        """Read the code off the simulated phone."""
        page = self.get(f"/pay/{pid}").text
        found = re.search(r'id="otp-code">(\d{6})<', page)
        assert found, "no OTP shown"
        return found.group(1)

    def send_otp(self, pid: str, code: str) -> TestResponse:
        return self.post(f"/pay/{pid}/otp", {"otp": code})

    def decide(self, pid: str, approve: bool) -> TestResponse:
        self.get(f"/app/{pid}")
        return self.post(f"/app/{pid}/{'approve' if approve else 'refuse'}")

    def return_link(self, pid: str) -> str:
        """The href of 'torna al negozio' on the result page."""
        found = re.search(
            r'id="return-link"[^>]*href="([^"]+)"', self.get(f"/pay/{pid}/result").text
        )
        assert found, "no return link"
        return html.unescape(found.group(1))

    def pay(self, pid: str, number: str, **kw: Any) -> TestResponse:
        """Procedi then Invio dati; returns the (unfollowed) response of Invio dati."""
        response = self.enter_card(pid, number, **kw)
        assert response.status_code == 303, response.text
        return self.confirm(pid)


@pytest.fixture
def customer(client: FlaskClient) -> Customer:
    return Customer(client)


@pytest.fixture
def customer_factory() -> Callable[[Flask], tuple[Customer, Callable[..., str]]]:
    """For another app: a customer and a create_payment of its own."""

    def _make(app: Flask) -> tuple[Customer, Callable[..., str]]:
        client = app.test_client()
        return Customer(client), _creator(Api(client))

    return _make


@pytest.fixture
def api_for() -> Callable[[Flask], Api]:
    """A signed API client for another app."""
    return lambda app: Api(app.test_client())
