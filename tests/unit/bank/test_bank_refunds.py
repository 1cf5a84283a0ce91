"""Refunds of captured payments and charges: amounts, idempotency, lookups, concurrency."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import FIXED_NOW, MERCHANT, SECRET
from sqlalchemy import make_url
from test_bank_charges import charge_body, save_card

from webapp.bank import errors, refunds
from webapp.bank.api import response_method
from webapp.bank.extensions import db
from webapp.bank.models import Payment, Refund
from webapp.signing import BadSignature, verify_request

PAID = 123456  # the conftest payment body's amount


def refund_body(ref: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "payment_ref": ref,
        "amount_cents": 10000,
        "currency": "EUR",
        "reason": "Recesso entro 14 giorni",
        "idempotency_key": "refund-1",
    }
    return body | overrides


@pytest.fixture
def paid(create_payment, customer) -> str:
    """A hosted payment of € 1.234,56, authorised (frictionless card)."""
    pid = create_payment()
    customer.pay(pid, "4242424242424242")
    return pid


@pytest.fixture
def charged(app, api) -> str:
    """A succeeded token charge of € 48,80."""
    token = save_card(app, "4242424242424242")
    response = api.post("/api/charges", charge_body(token))
    assert response.json["status"] == "succeeded"
    return response.json["charge_id"]


def test_partial_then_full_refund_of_a_hosted_payment(api, paid) -> None:
    first = api.post("/api/refunds", refund_body(paid, amount_cents=23456))
    assert first.status_code == 201
    assert first.json == {
        "refund_id": first.json["refund_id"],
        "payment_ref": paid,
        "status": "succeeded",
        "amount_cents": 23456,
        "currency": "EUR",
        "reason": "Recesso entro 14 giorni",
        "merchant_id": "pec-shop",
    }
    assert first.json["refund_id"].startswith("re_")
    assert api.get(f"/api/payments/{paid}").json["refunded_cents"] == 23456
    rest = api.post("/api/refunds", refund_body(paid, amount_cents=100000, idempotency_key="r2"))
    assert rest.status_code == 201
    assert api.get(f"/api/payments/{paid}").json["refunded_cents"] == PAID


def test_refund_over_the_remaining_amount_is_refused_and_changes_nothing(app, api, paid) -> None:
    api.post("/api/refunds", refund_body(paid, amount_cents=PAID - 100))
    over = api.post("/api/refunds", refund_body(paid, amount_cents=101, idempotency_key="r2"))
    assert over.status_code == 422
    assert over.json["error"] == "amount_exceeds_captured"
    assert api.get(f"/api/payments/{paid}").json["refunded_cents"] == PAID - 100
    with app.app_context():
        assert db.session.query(Refund).count() == 1
    # The key was not used up by the refusal: the exact remainder with it succeeds.
    ok = api.post("/api/refunds", refund_body(paid, amount_cents=100, idempotency_key="r2"))
    assert ok.status_code == 201


def test_refund_of_more_than_captured_in_one_go_is_refused(api, paid) -> None:
    response = api.post("/api/refunds", refund_body(paid, amount_cents=PAID + 1))
    assert response.status_code == 422
    assert response.json["error"] == "amount_exceeds_captured"


def test_refund_of_a_token_charge(api, charged) -> None:
    response = api.post("/api/refunds", refund_body(charged, amount_cents=4880))
    assert response.status_code == 201
    assert response.json["payment_ref"] == charged
    charge = api.get("/api/charges/by-key/renewal-1-2026").json
    assert charge["refunded_cents"] == 4880
    again = api.post("/api/refunds", refund_body(charged, amount_cents=1, idempotency_key="r2"))
    assert again.json["error"] == "amount_exceeds_captured"


def test_same_key_same_body_replays_the_refund(app, api, paid) -> None:
    first = api.post("/api/refunds", refund_body(paid))
    second = api.post("/api/refunds", refund_body(paid))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json == first.json
    assert api.get(f"/api/payments/{paid}").json["refunded_cents"] == 10000
    with app.app_context():
        assert db.session.query(Refund).count() == 1


@pytest.mark.parametrize(
    "change",
    [{"amount_cents": 10001}, {"reason": "Altro motivo"}, {"payment_ref": "other"}],
    ids=["amount", "reason", "target"],
)
def test_same_key_other_body_conflicts(api, paid, charged, change) -> None:
    api.post("/api/refunds", refund_body(paid))
    change = {"payment_ref": charged} if change.get("payment_ref") else change
    response = api.post("/api/refunds", refund_body(paid, **change))
    assert response.status_code == 409
    assert response.json["error"] == "idempotency_conflict"


@pytest.mark.parametrize("card", ["4000000000000002", "4111111111111111"], ids=str)
def test_refund_of_a_payment_without_money_taken_is_refused(
    api, create_payment, customer, card
) -> None:
    pid = create_payment()
    customer.pay(pid, card)  # declined, or waiting for the SMS code
    response = api.post("/api/refunds", refund_body(pid))
    assert response.status_code == 422
    assert response.json["error"] == "not_captured"


def test_refund_of_a_card_verification_or_a_new_payment_is_refused(
    api, create_payment, customer
) -> None:
    fresh = create_payment()
    verification = create_payment(amount_cents=0, idempotency_key="k0", order_ref="CARD")
    customer.pay(verification, "4242424242424242")
    for pid in (fresh, verification):
        response = api.post("/api/refunds", refund_body(pid, idempotency_key=pid))
        assert response.json["error"] == "not_captured"


def test_refund_of_a_declined_charge_is_refused(app, api) -> None:
    token = save_card(app, "4000000000009995")
    charge = api.post("/api/charges", charge_body(token)).json
    assert charge["status"] == "declined"
    response = api.post("/api/refunds", refund_body(charge["charge_id"]))
    assert response.status_code == 422
    assert response.json["error"] == "not_captured"


@pytest.mark.parametrize("ref", ["pay_nope", "ch_nope"])
def test_refund_of_an_unknown_payment_is_404(api, ref) -> None:
    response = api.post("/api/refunds", refund_body(ref))
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_refund_in_another_currency_is_refused(app, paid) -> None:
    with app.app_context(), pytest.raises(errors.RefundRefused) as refused:
        refunds.refund(
            target_id=paid,
            amount_cents=100,
            currency="USD",
            reason="x",
            idempotency_key="usd",
            now=FIXED_NOW,
        )
    assert refused.value.code == "currency_mismatch"


def test_find_refund_by_key(api, paid) -> None:
    assert api.get("/api/refunds/by-key/refund-1").status_code == 404
    made = api.post("/api/refunds", refund_body(paid)).json
    found = api.get("/api/refunds/by-key/refund-1")
    assert found.status_code == 200
    assert found.json == made


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "refund",
        42,
        None,
        {"amount_cents": "100"},
        {"amount_cents": 100.0},
        {"amount_cents": True},
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"amount_cents": 10**30},
        {"payment_ref": 7},
        {"payment_ref": ["pay_x"]},
        {"reason": ""},
        {"reason": {"a": 1}},
        {"reason": "x\x00y"},
        {"reason": "\ud800"},
        {"idempotency_key": None},
        {"currency": "eur"},
    ],
    ids=repr,
)
def test_invalid_refund_request_is_400(api, paid, body) -> None:
    if isinstance(body, dict):
        body = refund_body(paid) | body
    response = api.post("/api/refunds", body)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert api.get(f"/api/payments/{paid}").json["refunded_cents"] == 0


def test_refund_endpoints_need_a_signature(api, paid) -> None:
    assert api.post("/api/refunds", refund_body(paid), signed=False).status_code == 401
    assert api.get("/api/refunds/by-key/refund-1", signed=False).status_code == 401


@pytest.mark.parametrize("ok", [True, False])
def test_answers_are_signed_by_the_bank(api, paid, ok) -> None:
    path = "/api/refunds"
    response = api.post(path, refund_body(paid, amount_cents=1 if ok else PAID + 1))
    method = response_method(response.status_code, "POST")
    verify_request(SECRET, method, path, response.data, response.headers, int(time.time()))
    assert response.headers["X-Merchant-Id"] == MERCHANT
    with pytest.raises(BadSignature):  # a response is not a request, nor another status
        verify_request(SECRET, "POST", path, response.data, response.headers, int(time.time()))


def test_sandbox_ledger_lists_payments_charges_and_refunds(client, api, paid, charged) -> None:
    api.post("/api/refunds", refund_body(paid, amount_cents=2345, reason="Ordine annullato"))
    page = client.get("/sandbox/movimenti")
    assert page.status_code == 200
    assert paid in page.text and charged in page.text
    assert "rimborso" in page.text and "Ordine annullato" in page.text
    assert "− € 23,45" in page.text
    assert "rimborsato € 23,45" in page.text


# ---- concurrency ------------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    import psycopg

    base = make_url(os.environ["TEST_DATABASE_URL"])
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bank_refunds_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def race_app(request, make_app, tmp_path):
    """A bank on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield make_app()
        return
    if not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"):
        pytest.skip("TEST_DATABASE_URL is not PostgreSQL (scripts/with-postgres.sh sets it)")
    with _postgres_database() as url:
        app = make_app(BANK_DATABASE_URL=url)
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _race(api_for, app, bodies: list[dict[str, Any]]) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, dict]] = []

    def call(body: dict[str, Any]) -> None:
        own = api_for(app)
        barrier.wait()
        response = own.post("/api/refunds", body)
        results.append((response.status_code, response.json))

    threads = [threading.Thread(target=call, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_refunds_never_exceed_the_captured_amount(
    race_app, api_for, customer_factory
) -> None:
    customer, create = customer_factory(race_app)
    pid = create()
    customer.pay(pid, "4242424242424242")
    share = PAID * 6 // 10  # any two of them would exceed the payment
    bodies = [refund_body(pid, amount_cents=share, idempotency_key=f"r{i}") for i in range(4)]
    results = _race(api_for, race_app, bodies)
    assert sorted(code for code, _ in results) == [201, 422, 422, 422]
    assert {body.get("error") for code, body in results if code == 422} == {
        "amount_exceeds_captured"
    }
    with race_app.app_context():
        assert db.session.get(Payment, pid).refunded_cents == share
        assert db.session.query(Refund).count() == 1


def test_concurrent_identical_refunds_make_one_refund(race_app, api_for, customer_factory) -> None:
    customer, create = customer_factory(race_app)
    pid = create()
    customer.pay(pid, "4242424242424242")
    results = _race(api_for, race_app, [refund_body(pid, amount_cents=PAID)] * 4)
    assert sorted(code for code, _ in results) == [200, 200, 200, 201]
    assert len({body["refund_id"] for _, body in results}) == 1
    with race_app.app_context():
        assert db.session.get(Payment, pid).refunded_cents == PAID
