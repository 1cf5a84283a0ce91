"""The HTTP gateway client against the mock bank in process: refunds, statuses, signed answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from webapp.payments import gateway as gw
from webapp.payments.gateway import (
    Gateway,
    GatewayRefused,
    GatewayStatus,
    GatewayUnavailable,
    HttpGateway,
    HttpResponse,
)

SECRET = "client-test-secret"
MERCHANT = "pec-shop"
NOW = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)


class BankTransport:
    """Talks to the bank app in process, headers included (so answers are verified)."""

    def __init__(self, bank_app) -> None:
        self.client = bank_app.test_client()
        self.tamper = None  # a function (HttpResponse) -> HttpResponse, to play the attacker

    def __call__(self, method, url, body, headers, timeout) -> HttpResponse:
        parts = urlsplit(url)
        resp = self.client.open(parts.path, method=method, data=body, headers=headers)
        answer = HttpResponse(resp.status_code, resp.data, dict(resp.headers))
        return self.tamper(answer) if self.tamper else answer


@pytest.fixture
def bank_app(tmp_path) -> Iterator:
    from webapp.bank import create_bank_app
    from webapp.bank.extensions import db

    app = create_bank_app(
        {
            "TESTING": True,
            "BANK_DATABASE_URL": f"sqlite:///{tmp_path / 'bank.db'}",
            "BANK_SHARED_SECRET": SECRET,
            "BANK_MERCHANT_ID": MERCHANT,
            "SECRET_KEY": "x",
            "BANK_NOTIFY_ENABLED": False,
            "BANK_CLOCK": lambda: NOW,
        }
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def transport(bank_app) -> BankTransport:
    return BankTransport(bank_app)


@pytest.fixture
def client(transport) -> HttpGateway:
    return HttpGateway(
        api_url="http://bank.test", merchant_id=MERCHANT, secret=SECRET, transport=transport
    )


def _paid(client: HttpGateway, bank_app, card: str = "4242424242424242", key: str = "k1") -> str:
    """A hosted payment of € 122,00 paid at the bank with `card` (driven by its services)."""
    from webapp.bank import payments
    from webapp.bank.extensions import db

    hosted = client.create_payment(
        amount_cents=12200,
        currency="EUR",
        order_ref=f"ORD-{key}",
        description="PEC Pro",
        return_url="http://shop.test/ritorno",
        notify_url=None,
        save_card=True,
        idempotency_key=key,
    )
    with bank_app.app_context():
        payment = payments.get_payment(hosted.payment_id)
        payments.submit_card(
            payment,
            holder="Mario Rossi",
            number=card,
            exp_month="12",
            exp_year="2030",
            cvv="123",
            now=NOW,
        )
        payments.confirm_payment(payment, now=NOW)
        db.session.commit()
    return hosted.payment_id


def test_http_gateway_implements_every_gateway_method() -> None:
    wanted = {name for name in vars(Gateway) if not name.startswith("_")}
    assert {"refund", "find_refund"} <= wanted
    assert all(callable(getattr(HttpGateway, name, None)) for name in wanted)


def test_statuses_are_an_enum_that_still_compares_as_strings(client, bank_app) -> None:
    info = client.get_payment(_paid(client, bank_app))
    assert info.status is GatewayStatus.AUTHORISED
    assert info.status == "authorised" and info.final
    assert info.refunded_cents == 0
    declined = client.get_payment(_paid(client, bank_app, "4000000000000002", key="k2"))
    assert declined.status is GatewayStatus.DECLINED and declined.final


def test_refund_partial_then_replay_then_find(client, bank_app) -> None:
    pid = _paid(client, bank_app)
    made = client.refund(pid, 2200, "EUR", "Recesso", "ref-1")
    assert made.status is GatewayStatus.SUCCEEDED and made.succeeded
    assert (made.payment_ref, made.amount_cents, made.currency) == (pid, 2200, "EUR")
    assert made.reason == "Recesso" and made.merchant_id == MERCHANT
    assert client.refund(pid, 2200, "EUR", "Recesso", "ref-1") == made  # replay: same refund
    assert client.get_payment(pid).refunded_cents == 2200
    assert client.find_refund("ref-1") == made
    assert client.find_refund("ref-never") is None


def test_refund_of_a_charge(client, bank_app) -> None:
    pid = _paid(client, bank_app)
    token = client.get_payment(pid).card.token
    charge = client.charge_token(
        token=token,
        amount_cents=4880,
        currency="EUR",
        order_ref="REN-1",
        description="Rinnovo",
        initiator="merchant",
        idempotency_key="ch-1",
    )
    assert charge.status is GatewayStatus.SUCCEEDED and charge.succeeded
    refund = client.refund(charge.charge_id, 4880, "EUR", "Rinnovo annullato", "ref-ch")
    assert refund.payment_ref == charge.charge_id
    assert client.find_charge("ch-1").refunded_cents == 4880


@pytest.mark.parametrize(
    ("amount", "code", "status"),
    [(12201, "amount_exceeds_captured", 422), (0, "invalid_request", 400)],
)
def test_refused_refund_raises_gateway_refused(client, bank_app, amount, code, status) -> None:
    pid = _paid(client, bank_app)
    with pytest.raises(GatewayRefused) as refused:
        client.refund(pid, amount, "EUR", "Recesso", "ref-1")
    assert (refused.value.code, refused.value.status) == (code, status)
    assert refused.value.message  # the bank's detail travels with it
    assert client.find_refund("ref-1") is None


def test_refund_of_a_declined_payment_and_key_conflict(client, bank_app) -> None:
    declined = _paid(client, bank_app, "4000000000000002", key="k2")
    with pytest.raises(GatewayRefused) as refused:
        client.refund(declined, 100, "EUR", "x", "ref-d")
    assert refused.value.code == "not_captured"
    pid = _paid(client, bank_app)
    client.refund(pid, 100, "EUR", "x", "ref-1")
    with pytest.raises(GatewayRefused) as conflict:
        client.refund(pid, 200, "EUR", "x", "ref-1")
    assert (conflict.value.code, conflict.value.status) == ("idempotency_conflict", 409)


def test_bank_down_or_failing_is_unavailable(client, transport, bank_app) -> None:
    pid = _paid(client, bank_app)

    def down(*_args):
        raise GatewayUnavailable("connection refused")

    client.transport = down
    with pytest.raises(GatewayUnavailable):
        client.refund(pid, 100, "EUR", "x", "ref-1")
    client.transport = lambda *_a: HttpResponse(503, b"busy", {})
    with pytest.raises(GatewayUnavailable):
        client.find_refund("ref-1")


def _forged(answer: HttpResponse, **change) -> HttpResponse:
    return HttpResponse(**({"status": answer.status, "body": answer.body} | change))


@pytest.mark.parametrize(
    "attack",
    [
        # a man in the middle turns a refusal into a success (or edits an amount)
        lambda a: _forged(
            a, body=a.body.replace(b"12200", b"99999").replace(b"100", b"999"), headers=a.headers
        ),
        lambda a: _forged(a, headers={}),  # strips the signature
        lambda a: _forged(a, status=200 if a.status == 201 else 201, headers=a.headers),
        lambda a: _forged(a, headers=dict(a.headers) | {"X-Signature": "0" * 64}),
    ],
    ids=["body", "unsigned", "status", "signature"],
)
def test_answers_not_signed_by_the_bank_are_not_trusted(client, transport, bank_app, attack):
    pid = _paid(client, bank_app)
    transport.tamper = attack
    with pytest.raises(GatewayUnavailable, match="not trusted"):
        client.get_payment(pid)
    with pytest.raises(GatewayUnavailable, match="not trusted"):
        client.refund(pid, 100, "EUR", "x", "ref-1")


def test_answer_signed_with_another_secret_is_not_trusted(client, bank_app) -> None:
    pid = _paid(client, bank_app)
    client.secret = "another-secret"  # requests fail too: the bank answers 401, signed
    with pytest.raises(GatewayUnavailable, match="not trusted"):
        client.get_payment(pid)


def test_unknown_status_from_the_bank_is_unavailable(client) -> None:
    body = {"payment_id": "pay_x", "status": "paid-ish", "amount_cents": 1, "currency": "EUR"}
    body |= {"order_ref": "O", "card": None}
    client.transport = lambda *_a: HttpResponse(200, json.dumps(body).encode())
    with pytest.raises(GatewayUnavailable, match="unknown status"):
        client.get_payment("pay_x")


def test_requests_transport_reports_the_answer_headers(monkeypatch) -> None:
    fake = requests.Response()
    fake.status_code = 200
    fake._content = b"{}"
    fake.headers["X-Signature"] = "abc"
    monkeypatch.setattr(gw.requests, "request", lambda *a, **kw: fake)
    answer = gw.requests_transport("GET", "http://bank.test/api/stats", b"", {}, 1.0)
    assert answer.headers is not None and answer.headers["x-signature"] == "abc"

    def timeout(*a, **kw):
        raise requests.Timeout("read timed out")

    monkeypatch.setattr(gw.requests, "request", timeout)
    with pytest.raises(GatewayUnavailable, match="read timed out"):  # the log line says why
        gw.requests_transport("GET", "http://bank.test/api/stats", b"", {}, 1.0)


def test_response_signature_scheme_matches_the_bank() -> None:
    from webapp.bank.api import response_method

    assert gw.response_method(201, "post") == response_method(201, "POST")
    assert gw.response_method(201, "POST") != gw.response_method(200, "POST")


def test_stale_answer_is_not_trusted(client, bank_app) -> None:
    """A recorded answer replayed much later (the signature is fresh for 300 s only)."""
    pid = _paid(client, bank_app)
    client.get_payment(pid)
    later = time.time() + 3600
    client.clock = lambda: later  # the request is stale too: the bank answers 401, signed now
    with pytest.raises(GatewayUnavailable, match="not trusted"):
        client.get_payment(pid)


def test_a_refusal_reads_as_status_code_and_the_banks_detail() -> None:
    assert str(GatewayRefused("not_found", 404)) == "404 not_found"
    refused = GatewayRefused("amount_exceeds_captured", 422, "oltre il catturato")
    assert str(refused) == "422 amount_exceeds_captured: oltre il catturato"


def test_a_declined_token_charge_says_why(client, bank_app) -> None:
    from webapp.bank import payments as services
    from webapp.bank.extensions import db

    # 4000 0000 0000 9995: a zero-amount verification saves it, any charge is declined.
    hosted = client.create_payment(
        amount_cents=0,
        currency="EUR",
        order_ref="CARTA-1-n",
        description="Verifica",
        return_url="http://shop.test/ritorno",
        notify_url=None,
        save_card=True,
        idempotency_key="verify-1",
    )
    with bank_app.app_context():
        payment = services.get_payment(hosted.payment_id)
        services.submit_card(
            payment,
            holder="Mario Rossi",
            number="4000000000009995",
            exp_month="12",
            exp_year="2030",
            cvv="123",
            now=NOW,
        )
        services.confirm_payment(payment, now=NOW)
        db.session.commit()
    token = client.get_payment(hosted.payment_id).card.token
    kw = {"token": token, "currency": "EUR", "order_ref": "REN-9", "description": "Rinnovo"}
    charge = client.charge_token(amount_cents=4880, initiator="merchant", idempotency_key="c", **kw)
    assert charge.status is GatewayStatus.DECLINED and not charge.succeeded
    assert charge.decline_code == "insufficient_funds" and charge.decline_message
    assert client.find_charge("c").decline_code == "insufficient_funds"


class _EchoBank(BaseHTTPRequestHandler):
    """A bank on a free port that answers what it was sent (and is slow for /slow)."""

    def _answer(self) -> None:
        if self.path == "/slow":
            time.sleep(1.5)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        echo = {"method": self.command, "path": self.path, "body": body.decode()}
        echo["signature"] = self.headers.get("X-Test")
        out = json.dumps(echo).encode()
        try:
            self.send_response(201)
            self.send_header("X-Answer", "signed")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:  # /slow: the client gave up before the answer
            pass

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_bank() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoBank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_requests_transport_sends_the_request_it_is_given(echo_bank) -> None:
    answer = gw.requests_transport(
        "POST", f"{echo_bank}/api/charges", b'{"a": 1}', {"X-Test": "sig"}, 5.0
    )
    assert answer.status == 201 and answer.headers["X-Answer"] == "signed"
    echo = json.loads(answer.body)
    assert echo == {
        "method": "POST",
        "path": "/api/charges",
        "body": '{"a": 1}',
        "signature": "sig",
    }


def test_requests_transport_gives_up_after_the_timeout(echo_bank) -> None:
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable):
        gw.requests_transport("GET", f"{echo_bank}/slow", b"", {}, 0.2)
    assert time.monotonic() - started < 1.2


def test_a_forgotten_token_cannot_be_charged_and_forgetting_twice_is_fine(client, bank_app):
    token = client.get_payment(_paid(client, bank_app)).card.token
    client.forget_token(token)
    client.forget_token(token)  # already forgotten (a retry): not an error
    with pytest.raises(GatewayRefused) as refused:
        client.charge_token(
            token=token,
            amount_cents=4880,
            currency="EUR",
            order_ref="REN-1",
            description="Rinnovo",
            initiator="merchant",
            idempotency_key="ch-forgotten",
        )
    assert (refused.value.code, refused.value.status) == ("unknown_token", 404)


def test_forgetting_a_token_the_bank_does_not_know_is_not_an_error(client) -> None:
    client.transport = lambda *_a: HttpResponse(404, b'{"error": "unknown_token"}')
    client.forget_token("tok_gone")  # a bank that answers 404 for it: already forgotten
    client.transport = lambda *_a: HttpResponse(200, b"{}")
    client.forget_token("tok_old")  # or 200 with an empty object
    client.transport = lambda *_a: HttpResponse(409, b'{"error": "conflict"}')
    with pytest.raises(GatewayRefused):
        client.forget_token("tok_busy")


def test_a_charge_answer_without_refunds_reads_as_nothing_refunded(client) -> None:
    body = {"charge_id": "ch_1", "status": "succeeded", "amount_cents": 4880, "currency": "EUR"}
    body |= {"order_ref": "REN-1", "merchant_id": MERCHANT}
    client.transport = lambda *_a: HttpResponse(200, json.dumps(body).encode())
    found = client.find_charge("ch-key")
    assert (found.refunded_cents, found.decline_code, found.merchant_id) == (0, None, MERCHANT)


def test_a_status_answer_without_refunds_or_with_a_strange_merchant(client) -> None:
    body = {"payment_id": "pay_1", "status": "authorised", "amount_cents": 12200}
    body |= {"currency": "EUR", "order_ref": "ORD-1", "card": None, "merchant_id": 42}
    client.transport = lambda *_a: HttpResponse(200, json.dumps(body).encode())
    info = client.get_payment("pay_1")
    assert (info.refunded_cents, info.card) == (0, None)
    assert info.merchant_id is None  # not a merchant's id: it names no merchant


def test_the_request_on_the_wire_a_json_post_and_a_lookup_without_body(client) -> None:
    sent = []

    def recording(method, url, body, headers, timeout):
        # HTTP methods and header names are case-insensitive (requests sends them upper case).
        sent.append((method.upper(), url, body, {k.lower(): v for k, v in headers.items()}))
        answer = {"refund_id": "re_1", "payment_ref": "pay_1", "status": "succeeded"}
        answer |= {"amount_cents": 100, "currency": "EUR", "reason": "Recesso"}
        return HttpResponse(200, json.dumps(answer).encode())

    client.transport = recording
    client.refund("pay_1", 100, "EUR", "Recesso", "ref-1")
    client.find_refund("ref-1")
    (post, post_url, post_body, post_headers), (get, get_url, get_body, _) = sent
    assert (post, post_url) == ("POST", "http://bank.test/api/refunds")
    assert json.loads(post_body)["idempotency_key"] == "ref-1"
    assert post_headers["content-type"].lower() == "application/json"  # media types: any case
    assert (get, get_url, get_body) == ("GET", "http://bank.test/api/refunds/by-key/ref-1", b"")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b'{"error": "internal"}', "bank answered 500"),
        (502, b"", "bank answered 502"),
        (200, b"<html>proxy error</html>", "bank answered garbage"),
        (200, b'["a", "list"]', "bank answered garbage"),
    ],
)
def test_an_answer_the_shop_cannot_read_is_an_unknown_outcome_that_says_why(
    client, status, body, reason
) -> None:
    client.transport = lambda *_a: HttpResponse(status, body)
    with pytest.raises(GatewayUnavailable, match=f"^{reason}$"):
        client.find_charge("ch-key")


def test_a_refusal_without_an_error_code_is_still_a_refusal(client) -> None:
    client.transport = lambda *_a: HttpResponse(400, b"{}")
    with pytest.raises(GatewayRefused) as refused:
        client.find_charge("ch-key")
    assert (refused.value.code, refused.value.status, refused.value.message) == ("error", 400, None)


def test_the_client_gives_the_transport_its_timeout_and_the_address(client) -> None:
    timeouts, urls = [], []

    def recording(method, url, body, headers, timeout):
        timeouts.append(timeout)
        urls.append(url)
        return HttpResponse(404, b"{}")

    client.transport = recording
    assert client.find_charge("ch-key") is None
    slow = HttpGateway(
        api_url="http://bank.test/", merchant_id=MERCHANT, secret=SECRET, timeout=2.5
    )
    slow.transport = recording
    assert slow.find_refund("re-key") is None
    assert timeouts == [10.0, 2.5]
    # the API's address with or without a trailing slash
    assert urls[1] == "http://bank.test/api/refunds/by-key/re-key"


def test_a_refusal_keeps_the_banks_detail_only_when_it_is_words(client) -> None:
    answer = {"error": "invalid_request", "detail": {"amount_cents": ["troppo alto"]}}
    client.transport = lambda *_a: HttpResponse(400, json.dumps(answer).encode())
    with pytest.raises(GatewayRefused) as refused:
        client.find_charge("ch-key")
    assert (refused.value.code, refused.value.message) == ("invalid_request", None)
    answer["detail"] = "importo troppo alto"
    with pytest.raises(GatewayRefused) as refused:
        client.find_charge("ch-key")
    assert refused.value.message == "importo troppo alto"
