"""The one interface the shop transmits invoices through, and its HTTP client.

Transmission code depends on `SdiGateway` only: a real accredited intermediary is another
implementation of it, or the same client pointed at an intermediary speaking this contract
(SDI_API_URL, SDI_CLIENT_ID, SDI_SHARED_SECRET; README "Fatture elettroniche verso lo SdI").
`HttpSdiGateway` speaks the signed JSON contract of the SdI · Sandbox (webapp.sdi.api).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from webapp import signing
from webapp.payments.gateway import HttpResponse, Transport, requests_transport, response_method


class SdiUnavailable(Exception):
    """The intermediary did not answer usably (timeout, refused, 5xx): the outcome is unknown."""


class SdiRefused(Exception):
    """The intermediary refused the file itself (empty, malformed request): no IdentificativoSdI."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Receipt:
    """The intermediary took the file: its IdentificativoSdI."""

    sdi_id: str
    file_name: str


@dataclass(frozen=True)
class FeedItem:
    """A notification of the feed: its cursor and its XML."""

    cursor: int
    xml: bytes


class SdiGateway(Protocol):
    """What the shop needs from an intermediary."""

    def send_file(self, file_name: str, content: bytes) -> Receipt: ...

    def find_file(self, file_name: str) -> Receipt | None: ...

    def notifications(self, since: int) -> list[FeedItem]: ...

    def verify_webhook(self, path: str, body: bytes, headers: Mapping[str, str]) -> None: ...


class HttpSdiGateway:
    """Client of the intermediary's HMAC-signed JSON API."""

    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        secret: str,
        timeout: float = 10.0,
        transport: Transport = requests_transport,
        clock: Callable[[], float] = time.time,
    ):
        self.api_url = api_url.rstrip("/")
        self.client_id = client_id
        self.secret = secret
        self.timeout = timeout
        self.transport = transport
        self.clock = clock

    def _call(
        self, method: str, path: str, payload: dict | None = None, ok=(200, 201)
    ) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = signing.sign_request(
            self.secret, self.client_id, method, path.split("?")[0], body, int(self.clock())
        )
        headers["Content-Type"] = "application/json"
        try:
            resp = self.transport(method, self.api_url + path, body, headers, self.timeout)
        except Exception as exc:  # the payments transport raises its own "unavailable"
            raise SdiUnavailable(str(exc)) from exc
        if resp.status >= 500:
            raise SdiUnavailable(f"intermediary answered {resp.status}")
        self._verify_answer(method, path.split("?")[0], resp)
        try:
            data = json.loads(resp.body or b"{}")
        except ValueError as exc:
            raise SdiUnavailable("intermediary answered garbage") from exc
        if not isinstance(data, dict):
            raise SdiUnavailable("intermediary answered garbage")
        if resp.status not in ok:
            detail = data.get("detail")
            raise SdiRefused(
                str(data.get("error", "errore")), detail if isinstance(detail, str) else None
            )
        return resp.status, data

    def _verify_answer(self, method: str, path: str, resp: HttpResponse) -> None:
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
            raise SdiUnavailable(f"intermediary answer not trusted: {exc}") from exc

    def send_file(self, file_name: str, content: bytes) -> Receipt:
        payload = {"nome_file": file_name, "file": base64.b64encode(content).decode()}
        _, data = self._call("POST", "/api/v1/fatture", payload)
        return _receipt(data)

    def find_file(self, file_name: str) -> Receipt | None:
        status, data = self._call("GET", f"/api/v1/fatture/{quote(file_name)}", ok=(200, 404))
        return None if status == 404 else _receipt(data)

    def notifications(self, since: int) -> list[FeedItem]:
        _, data = self._call("GET", f"/api/v1/notifiche?dopo={int(since)}", ok=(200,))
        try:
            return [
                FeedItem(int(item["cursore"]), base64.b64decode(item["xml"]))
                for item in data["notifiche"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise SdiUnavailable("intermediary answered an unreadable feed") from exc

    def verify_webhook(self, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise signing.BadSignature unless the intermediary signed this POST, recently."""
        if headers.get(signing.MERCHANT_HEADER) != self.client_id:
            raise signing.BadSignature("wrong client")
        signing.verify_request(self.secret, "POST", path, body, headers, int(self.clock()))


def _receipt(data: dict) -> Receipt:
    try:
        return Receipt(str(data["identificativo_sdi"]), str(data["nome_file"]))
    except KeyError as exc:
        raise SdiUnavailable("intermediary answered without an IdentificativoSdI") from exc
