"""Charges of saved cards by token: outcomes, idempotency, lookups, deleted tokens."""

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from webapp.bank import idempotency
from webapp.bank.extensions import db
from webapp.bank.models import Card, Charge


def save_card(app, pan: str, exp_month: int = 12, exp_year: int = 2030) -> str:
    """A saved card straight in the bank's table (as a verified hosted payment leaves it)."""
    token = f"tok_test_{pan[-4:]}_{exp_year}"
    with app.app_context():
        db.session.add(
            Card(
                token=token,
                pan=pan,
                brand="visa",
                last4=pan[-4:],
                exp_month=exp_month,
                exp_year=exp_year,
                holder="Mario Rossi",
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        db.session.commit()
    return token


def charge_body(token: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "token": token,
        "amount_cents": 4880,
        "currency": "EUR",
        "order_ref": "REN-0001",
        "description": "Rinnovo PEC Pro",
        "initiator": "merchant",
        "idempotency_key": "renewal-1-2026",
    }
    return body | overrides


def test_charge_succeeds(app, api) -> None:
    token = save_card(app, "4242424242424242")
    response = api.post("/api/charges", charge_body(token))
    assert response.status_code == 201
    body = response.json
    assert body["charge_id"].startswith("ch_")
    assert body == {
        "charge_id": body["charge_id"],
        "status": "succeeded",
        "amount_cents": 4880,
        "currency": "EUR",
        "order_ref": "REN-0001",
        "decline_code": None,
        "decline_message": None,
        "refunded_cents": 0,
        "merchant_id": "pec-shop",
    }
    assert api.get("/api/stats").json["charges_succeeded"] == 1


def test_charge_of_a_card_saved_through_the_hosted_page(customer, create_payment, api) -> None:
    pid = create_payment(amount_cents=0)
    customer.pay(pid, "4111 1111 1111 1111")
    customer.send_otp(pid, customer.otp_code(pid))
    token = api.get(f"/api/payments/{pid}").json["card"]["token"]
    assert api.post("/api/charges", charge_body(token)).json["status"] == "succeeded"


@pytest.mark.parametrize(
    ("pan", "exp_year", "code", "message"),
    [
        ("4000000000000002", 2030, "card_declined", "Carta rifiutata dalla banca emittente."),
        ("4000000000009995", 2030, "insufficient_funds", "Fondi insufficienti."),
        ("4242424242424242", 2025, "expired_card", "Carta scaduta."),
        ("4000000000000069", 2030, "expired_card", "Carta scaduta."),
    ],
)
def test_charge_declines(app, api, pan, exp_year, code, message) -> None:
    token = save_card(app, pan, exp_year=exp_year)
    response = api.post("/api/charges", charge_body(token))
    assert response.status_code == 201
    assert response.json["status"] == "declined"
    assert (response.json["decline_code"], response.json["decline_message"]) == (code, message)
    assert api.get("/api/stats").json["charges_succeeded"] == 0


def test_card_expires_after_its_month_by_the_bank_clock(app, api, clock) -> None:
    token = save_card(app, "4242424242424242", exp_month=3, exp_year=2026)
    assert api.post("/api/charges", charge_body(token)).json["status"] == "succeeded"
    clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    later = api.post("/api/charges", charge_body(token, idempotency_key="renewal-1-2027"))
    assert later.json["decline_code"] == "expired_card"


def test_replay_returns_the_stored_charge(app, api) -> None:
    token = save_card(app, "4242424242424242")
    first = api.post("/api/charges", charge_body(token))
    again = api.post("/api/charges", charge_body(token, description="not compared"))
    assert again.status_code == 200
    assert again.json == first.json
    assert api.get("/api/stats").json["charges_succeeded"] == 1


def test_replay_of_a_declined_charge_is_still_declined(app, api) -> None:
    token = save_card(app, "4000000000009995")
    first = api.post("/api/charges", charge_body(token))
    again = api.post("/api/charges", charge_body(token))
    assert again.status_code == 200 and again.json == first.json


@pytest.mark.parametrize(
    "change", [{"amount_cents": 1}, {"order_ref": "REN-0002"}, {"token": "tok_other"}]
)
def test_reused_key_with_other_charge_conflicts(app, api, change) -> None:
    token = save_card(app, "4242424242424242")
    api.post("/api/charges", charge_body(token))
    response = api.post("/api/charges", charge_body(token) | change)
    assert response.status_code == 409
    assert response.json == {"error": "idempotency_conflict"}
    assert api.get("/api/stats").json["charges_succeeded"] == 1


def test_lookup_by_key(app, api) -> None:
    token = save_card(app, "4242424242424242")
    created = api.post("/api/charges", charge_body(token)).json
    found = api.get("/api/charges/by-key/renewal-1-2026")
    assert found.status_code == 200 and found.json == created
    missing = api.get("/api/charges/by-key/never-seen")
    assert missing.status_code == 404


def test_unknown_token(api) -> None:
    response = api.post("/api/charges", charge_body("tok_nope"))
    assert response.status_code == 404
    assert response.json == {"error": "unknown_token"}


def test_deleted_token_cannot_be_charged_but_replays_still_answer(app, api) -> None:
    token = save_card(app, "4242424242424242")
    first = api.post("/api/charges", charge_body(token)).json
    assert api.delete(f"/api/tokens/{token}").status_code == 204
    assert api.delete(f"/api/tokens/{token}").status_code == 204  # idempotent
    assert api.delete("/api/tokens/tok_never").status_code == 204
    fresh = api.post("/api/charges", charge_body(token, idempotency_key="renewal-2"))
    assert fresh.status_code == 404
    assert api.post("/api/charges", charge_body(token)).json == first


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"initiator": "robot"},
        {"currency": "GBP"},
        {"idempotency_key": None},
    ],
)
def test_invalid_charge_request(app, api, change) -> None:
    token = save_card(app, "4242424242424242")
    assert api.post("/api/charges", charge_body(token, **change)).status_code == 400


def test_lost_race_on_the_unique_key_returns_the_winner(app, api, monkeypatch) -> None:
    """Both requests passed the lookup; the UNIQUE constraint stops the second insert."""
    token = save_card(app, "4242424242424242")
    first = api.post("/api/charges", charge_body(token)).json
    real = idempotency.find_by_key
    calls: list[str] = []

    def blind_once(model, key: str):
        calls.append(key)
        return None if len(calls) == 1 else real(model, key)

    monkeypatch.setattr(idempotency, "find_by_key", blind_once)
    again = api.post("/api/charges", charge_body(token))
    assert len(calls) == 2  # the insert failed, then the replay found the stored charge
    assert again.status_code == 200 and again.json == first
    assert api.get("/api/stats").json["charges_succeeded"] == 1


def test_concurrent_identical_charges_make_one_charge(app, api) -> None:
    token = save_card(app, "4242424242424242")
    barrier = threading.Barrier(4)
    results: list[tuple[int, str]] = []

    def call() -> None:
        own = type(api)(app.test_client())
        barrier.wait()
        response = own.post("/api/charges", charge_body(token))
        results.append((response.status_code, response.json["charge_id"]))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(code for code, _ in results) == [200, 200, 200, 201]
    assert len({charge_id for _, charge_id in results}) == 1
    with app.app_context():
        assert db.session.query(Charge).count() == 1
