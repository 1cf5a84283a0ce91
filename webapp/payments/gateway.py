"""The one gateway interface the shop pays through, and its client for the (mock) bank.

Checkout code depends on `Gateway` only: a real acquirer is another implementation of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from webapp import signing


class GatewayUnavailable(Exception):
    """The bank did not answer (timeout, connection refused, 5xx): the outcome is unknown."""


class GatewayRefused(Exception):
    """The bank refused the request itself (bad input, unknown token, conflict)."""

    def __init__(self, code: str, status: int):
        super().__init__(f"{status} {code}")
        self.code = code
        self.status = status


@dataclass(frozen=True)
class CardDetails:
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    holder: str


@dataclass(frozen=True)
class HostedPayment:
    payment_id: str
    redirect_url: str


@dataclass(frozen=True)
class PaymentStatusInfo:
    payment_id: str
    status: str  # created | pending_confirmation | challenge | authorised | declined | failed
    amount_cents: int
    currency: str
    order_ref: str
    decline_code: str | None
    decline_message: str | None
    card: CardDetails | None

    @property
    def final(self) -> bool:
        return self.status in {"authorised", "declined", "failed"}


@dataclass(frozen=True)
class ChargeResult:
    charge_id: str
    status: str  # succeeded | declined
    amount_cents: int
    currency: str
    order_ref: str
    decline_code: str | None
    decline_message: str | None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class Gateway(Protocol):
    """What the shop needs from a card gateway."""

    def create_payment(
        self,
        *,
        amount_cents: int,
        currency: str,
        order_ref: str,
        description: str,
        return_url: str,
        notify_url: str | None,
        save_card: bool,
        idempotency_key: str,
    ) -> HostedPayment: ...

    def get_payment(self, payment_id: str) -> PaymentStatusInfo: ...

    def charge_token(
        self,
        *,
        token: str,
        amount_cents: int,
        currency: str,
        order_ref: str,
        description: str,
        initiator: str,
        idempotency_key: str,
    ) -> ChargeResult: ...

    def find_charge(self, idempotency_key: str) -> ChargeResult | None: ...

    def forget_token(self, token: str) -> None: ...

    def verify_return(self, params: Mapping[str, str]) -> None: ...

    def verify_notification(self, path: str, body: bytes, headers: Mapping[str, str]) -> None: ...


@dataclass
class HttpResponse:
    status: int
    body: bytes


# (method, url, body, headers, timeout) -> HttpResponse; injectable so tests can talk to the
# bank app in process.
Transport = Callable[[str, str, bytes, dict[str, str], float], HttpResponse]


def requests_transport(
    method: str, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> HttpResponse:
    """The production transport: plain HTTP with a timeout."""
    try:
        resp = requests.request(method, url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise GatewayUnavailable(str(exc)) from exc
    return HttpResponse(resp.status_code, resp.content)


class MockBankGateway:
    """Client of the mock bank's HMAC-signed API (docs/bank-api.md)."""

    def __init__(
        self,
        *,
        api_url: str,
        merchant_id: str,
        secret: str,
        timeout: float = 10.0,
        transport: Transport = requests_transport,
        clock: Callable[[], float] = time.time,
    ):
        self.api_url = api_url.rstrip("/")
        self.merchant_id = merchant_id
        self.secret = secret
        self.timeout = timeout
        self.transport = transport
        self.clock = clock

    def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, dict]:
        """A signed request; an answer outside `ok` (and not a 5xx) raises GatewayRefused."""
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = signing.sign_request(
            self.secret, self.merchant_id, method, path, body, int(self.clock())
        )
        headers["Content-Type"] = "application/json"
        resp = self.transport(method, self.api_url + path, body, headers, self.timeout)
        if resp.status >= 500:
            raise GatewayUnavailable(f"bank answered {resp.status}")
        try:
            data = json.loads(resp.body or b"{}")
        except ValueError as exc:
            raise GatewayUnavailable("bank answered garbage") from exc
        if resp.status not in ok:
            raise GatewayRefused(data.get("error", "error"), resp.status)
        return resp.status, data

    def create_payment(self, **kw) -> HostedPayment:
        _, data = self._call("POST", "/api/payments", kw)
        return HostedPayment(data["payment_id"], data["redirect_url"])

    def get_payment(self, payment_id: str) -> PaymentStatusInfo:
        _, data = self._call("GET", f"/api/payments/{payment_id}", ok=(200,))
        card = data.get("card")
        return PaymentStatusInfo(
            payment_id=data["payment_id"],
            status=data["status"],
            amount_cents=int(data["amount_cents"]),
            currency=data["currency"],
            order_ref=data["order_ref"],
            decline_code=data.get("decline_code"),
            decline_message=data.get("decline_message"),
            card=CardDetails(**{k: card[k] for k in CardDetails.__dataclass_fields__})
            if card
            else None,
        )

    @staticmethod
    def _charge(data: dict) -> ChargeResult:
        return ChargeResult(
            charge_id=data["charge_id"],
            status=data["status"],
            amount_cents=int(data["amount_cents"]),
            currency=data["currency"],
            order_ref=data["order_ref"],
            decline_code=data.get("decline_code"),
            decline_message=data.get("decline_message"),
        )

    def charge_token(self, **kw) -> ChargeResult:
        _, data = self._call("POST", "/api/charges", kw)
        return self._charge(data)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        status, data = self._call("GET", f"/api/charges/by-key/{idempotency_key}", ok=(200, 404))
        return None if status == 404 else self._charge(data)

    def forget_token(self, token: str) -> None:
        self._call("DELETE", f"/api/tokens/{token}", ok=(200, 204, 404))

    def verify_return(self, params: Mapping[str, str]) -> None:
        signing.verify_params(self.secret, params)

    def verify_notification(self, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        signing.verify_request(self.secret, "POST", path, body, headers, int(self.clock()))
