"""The one gateway interface the shop pays through, and its HTTP client (docs/bank-api.md).

Checkout code depends on `Gateway` only: a real acquirer is another implementation of it.
`HttpGateway` speaks the signed JSON contract to any bank implementing it (the mock bank too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import requests

from webapp import signing

R = TypeVar("R")


class GatewayUnavailable(Exception):
    """The bank did not answer (timeout, connection refused, 5xx): the outcome is unknown."""


class GatewayRefused(Exception):
    """The bank refused the request itself (bad input, unknown token, conflict, refund refused).

    `code` is the bank's error code (e.g. `amount_exceeds_captured`), `status` the HTTP status,
    `message` the bank's detail when it gave one.
    """

    def __init__(self, code: str, status: int, message: str | None = None):
        super().__init__(f"{status} {code}" + (f": {message}" if message else ""))
        self.code = code
        self.status = status
        self.message = message


class GatewayStatus(StrEnum):
    """Statuses as the bank returns them (string values are the wire values)."""

    # hosted payments
    CREATED = "created"
    PENDING_CONFIRMATION = "pending_confirmation"
    CHALLENGE = "challenge"
    AUTHORISED = "authorised"
    DECLINED = "declined"
    FAILED = "failed"
    # token charges and refunds
    SUCCEEDED = "succeeded"
    # Not final: the bank has not decided yet (the issuer did not confirm). Never authorised.
    PENDING = "pending"


#: A hosted payment in one of these never changes again.
FINAL_PAYMENT_STATUSES = frozenset(
    {GatewayStatus.AUTHORISED, GatewayStatus.DECLINED, GatewayStatus.FAILED}
)


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
    status: GatewayStatus  # created … authorised | declined | failed
    amount_cents: int
    currency: str
    order_ref: str
    decline_code: str | None
    decline_message: str | None
    card: CardDetails | None
    refunded_cents: int = 0
    merchant_id: str | None = None  # whose payment the bank says this is

    @property
    def final(self) -> bool:
        return self.status in FINAL_PAYMENT_STATUSES


@dataclass(frozen=True)
class ChargeResult:
    charge_id: str
    status: GatewayStatus  # succeeded | declined
    amount_cents: int
    currency: str
    order_ref: str
    decline_code: str | None
    decline_message: str | None
    refunded_cents: int = 0
    merchant_id: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == GatewayStatus.SUCCEEDED


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    payment_ref: str  # the refunded hosted payment (pay_…) or token charge (ch_…)
    status: GatewayStatus  # succeeded (a refused refund raises GatewayRefused instead)
    amount_cents: int
    currency: str
    reason: str
    merchant_id: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == GatewayStatus.SUCCEEDED


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

    def refund(
        self,
        payment_ref_or_charge_id: str,
        amount_cents: int,
        currency: str,
        reason: str,
        idempotency_key: str,
    ) -> RefundResult: ...

    def find_refund(self, idempotency_key: str) -> RefundResult | None: ...

    def forget_token(self, token: str) -> None: ...

    def verify_return(self, params: Mapping[str, str]) -> None: ...

    def verify_notification(self, path: str, body: bytes, headers: Mapping[str, str]) -> None: ...


def find_or_send(answer_lost: bool, find: Callable[[], R | None], send: Callable[[], R]) -> R:
    """A request made by idempotency key: if an earlier answer was lost, first ask the bank
    what became of the key (`find`), and send the request only when the bank knows nothing."""
    result = find() if answer_lost else None
    return send() if result is None else result


@dataclass
class HttpResponse:
    status: int
    body: bytes
    #: None from a transport that cannot report headers (then the answer's signature is not
    #: checked); the production transport always reports them.
    headers: Mapping[str, str] | None = None


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
    return HttpResponse(resp.status_code, resp.content, resp.headers)


def response_method(status: int, method: str) -> str:
    """The "method" the bank signs an answer with (docs/bank-api.md): never a request's."""
    return f"RESPONSE {status} {method.upper()}"


class HttpGateway:
    """Client of a bank's HMAC-signed JSON API (docs/bank-api.md), e.g. the mock bank's."""

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
        self._verify_answer(method, path, resp)
        try:
            data = json.loads(resp.body or b"{}")
        except ValueError as exc:
            raise GatewayUnavailable("bank answered garbage") from exc
        if not isinstance(data, dict):
            raise GatewayUnavailable("bank answered garbage")
        if resp.status not in ok:
            detail = data.get("detail")
            raise GatewayRefused(
                str(data.get("error", "error")),
                resp.status,
                detail if isinstance(detail, str) else None,
            )
        return resp.status, data

    def _verify_answer(self, method: str, path: str, resp: HttpResponse) -> None:
        """An answer not signed by the bank is not trusted: its outcome is unknown."""
        if resp.headers is None:
            return
        try:
            signing.verify_request(
                self.secret,
                response_method(resp.status, method),
                path,
                resp.body,
                resp.headers,
                int(self.clock()),
            )
        except signing.BadSignature as exc:
            raise GatewayUnavailable(f"bank answer not trusted: {exc}") from exc

    def create_payment(self, **kw) -> HostedPayment:
        _, data = self._call("POST", "/api/payments", kw)
        return HostedPayment(data["payment_id"], data["redirect_url"])

    def get_payment(self, payment_id: str) -> PaymentStatusInfo:
        _, data = self._call("GET", f"/api/payments/{payment_id}", ok=(200,))
        card = data.get("card")
        return PaymentStatusInfo(
            payment_id=data["payment_id"],
            status=_status(data["status"]),
            amount_cents=int(data["amount_cents"]),
            currency=data["currency"],
            order_ref=data["order_ref"],
            decline_code=data.get("decline_code"),
            decline_message=data.get("decline_message"),
            card=CardDetails(**{k: card[k] for k in CardDetails.__dataclass_fields__})
            if card
            else None,
            refunded_cents=int(data.get("refunded_cents", 0)),
            merchant_id=_merchant(data),
        )

    @staticmethod
    def _charge(data: dict) -> ChargeResult:
        return ChargeResult(
            charge_id=data["charge_id"],
            status=_status(data["status"]),
            amount_cents=int(data["amount_cents"]),
            currency=data["currency"],
            order_ref=data["order_ref"],
            decline_code=data.get("decline_code"),
            decline_message=data.get("decline_message"),
            refunded_cents=int(data.get("refunded_cents", 0)),
            merchant_id=_merchant(data),
        )

    def charge_token(self, **kw) -> ChargeResult:
        _, data = self._call("POST", "/api/charges", kw)
        return self._charge(data)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        status, data = self._call("GET", f"/api/charges/by-key/{idempotency_key}", ok=(200, 404))
        return None if status == 404 else self._charge(data)

    @staticmethod
    def _refund(data: dict) -> RefundResult:
        return RefundResult(
            refund_id=data["refund_id"],
            payment_ref=data["payment_ref"],
            status=_status(data["status"]),
            amount_cents=int(data["amount_cents"]),
            currency=data["currency"],
            reason=data["reason"],
            merchant_id=_merchant(data),
        )

    def refund(
        self,
        payment_ref_or_charge_id: str,
        amount_cents: int,
        currency: str,
        reason: str,
        idempotency_key: str,
    ) -> RefundResult:
        """Refund (part of) a captured payment or charge; replaying the key is safe.

        GatewayRefused with code `amount_exceeds_captured`, `not_captured`, `not_found` or
        `idempotency_conflict`; GatewayUnavailable when the outcome is unknown (then ask
        find_refund with the same key, or retry with it).
        """
        payload = {
            "payment_ref": payment_ref_or_charge_id,
            "amount_cents": amount_cents,
            "currency": currency,
            "reason": reason,
            "idempotency_key": idempotency_key,
        }
        _, data = self._call("POST", "/api/refunds", payload)
        return self._refund(data)

    def find_refund(self, idempotency_key: str) -> RefundResult | None:
        """The refund made with this key, or None when the bank never made one."""
        status, data = self._call("GET", f"/api/refunds/by-key/{idempotency_key}", ok=(200, 404))
        return None if status == 404 else self._refund(data)

    def forget_token(self, token: str) -> None:
        self._call("DELETE", f"/api/tokens/{token}", ok=(200, 204, 404))

    def verify_return(self, params: Mapping[str, str]) -> None:
        signing.verify_params(self.secret, params)

    def verify_notification(self, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        signing.verify_request(self.secret, "POST", path, body, headers, int(self.clock()))


def _status(value: object) -> GatewayStatus:
    """The bank's status string as the enum; anything else means the answer cannot be read."""
    try:
        return GatewayStatus(value)
    except ValueError as exc:
        raise GatewayUnavailable(f"bank answered an unknown status {value!r}") from exc


def _merchant(data: dict) -> str | None:
    """The merchant the answer names (None when it names none: then it matches no merchant)."""
    value = data.get("merchant_id")
    return value if isinstance(value, str) else None
