"""The signed JSON API: authentication, hosted-payment creation, idempotency, status."""

import json
import time
from typing import Any

import pytest

from webapp.signing import sign_request

SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options")


def test_unsigned_request_is_refused(api, payment_body) -> None:
    response = api.post("/api/payments", payment_body(), signed=False)
    assert response.status_code == 401
    assert response.json == {"error": "bad_signature"}


@pytest.mark.parametrize(
    "kw",
    [
        {"secret": "wrong-secret"},
        {"merchant": "other-shop"},
        {"ts": -400},  # stale: older than 300 s (offset from now, taken when the test runs)
        {"ts": +400},
    ],
)
def test_badly_signed_request_is_refused(api, payment_body, kw: dict[str, Any]) -> None:
    if "ts" in kw:
        kw = {"ts": int(time.time()) + kw["ts"]}
    response = api.post("/api/payments", payment_body(), **kw)
    assert response.status_code == 401
    assert response.json == {"error": "bad_signature"}


def test_tampered_body_is_refused(client, payment_body) -> None:
    signed = json.dumps(payment_body()).encode()
    now = int(time.time())
    headers = sign_request("test-bank-secret", "pec-shop", "POST", "/api/payments", signed, now)
    headers["Content-Type"] = "application/json"
    tampered = json.dumps(payment_body(amount_cents=1)).encode()
    assert client.post("/api/payments", data=tampered, headers=headers).status_code == 401


@pytest.mark.parametrize("path", ["/api/payments/pay_x", "/api/stats", "/api/charges/by-key/k"])
def test_get_endpoints_need_a_signature_too(api, path: str) -> None:
    assert api.get(path, signed=False).status_code == 401


def test_create_payment(api, payment_body) -> None:
    response = api.post("/api/payments", payment_body())
    assert response.status_code == 201
    body = response.json
    assert body["status"] == "created"
    assert body["payment_id"].startswith("pay_")
    assert body["redirect_url"] == f"http://localhost/pay/{body['payment_id']}"


def test_same_idempotency_key_returns_same_payment(api, payment_body) -> None:
    first = api.post("/api/payments", payment_body())
    again = api.post("/api/payments", payment_body(description="changed text is not compared"))
    assert again.status_code == 200
    assert again.json == first.json
    other = api.post("/api/payments", payment_body(idempotency_key="another"))
    assert other.status_code == 201
    assert other.json["payment_id"] != first.json["payment_id"]


@pytest.mark.parametrize("change", [{"amount_cents": 999}, {"order_ref": "ORD-0002"}])
def test_reused_key_with_other_request_conflicts(api, payment_body, change) -> None:
    api.post("/api/payments", payment_body())
    response = api.post("/api/payments", payment_body(**change))
    assert response.status_code == 409
    assert response.json == {"error": "idempotency_conflict"}


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": -1},
        {"amount_cents": "100"},
        {"amount_cents": True},
        {"amount_cents": 1.5},
        {"currency": "USD"},
        {"order_ref": ""},
        {"return_url": "javascript:alert(1)"},
        {"return_url": "/relative"},
        {"notify_url": "ftp://shop.test/x"},
        {"save_card": "yes"},
        {"idempotency_key": ""},
        {"amount_cents": 0, "save_card": False},
    ],
)
def test_invalid_payment_request(api, payment_body, change) -> None:
    response = api.post("/api/payments", payment_body(**change))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert response.json["detail"]


def test_body_must_be_a_json_object(api) -> None:
    response = api.call("POST", "/api/payments", [1, 2])  # type: ignore[arg-type]
    assert response.status_code == 400


def test_payment_status_of_new_payment(api, create_payment) -> None:
    pid = create_payment()
    response = api.get(f"/api/payments/{pid}")
    assert response.status_code == 200
    assert response.json == {
        "payment_id": pid,
        "status": "created",
        "amount_cents": 123456,
        "currency": "EUR",
        "order_ref": "ORD-0001",
        "decline_code": None,
        "decline_message": None,
        "refunded_cents": 0,
        "card": None,
        "merchant_id": "pec-shop",
    }


def test_unknown_payment_is_404(api) -> None:
    response = api.get("/api/payments/pay_nope")
    assert response.status_code == 404
    assert response.json == {"error": "not_found"}


def test_stats_start_at_zero(api) -> None:
    assert api.get("/api/stats").json == {"charges_succeeded": 0, "payments_authorised": 0}


def test_security_headers_on_api_and_pages(api, client, create_payment) -> None:
    pid = create_payment()
    for response in (api.get("/api/stats"), client.get(f"/pay/{pid}"), client.get("/pay/nope")):
        for name in SECURITY_HEADERS:
            assert name in response.headers
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
