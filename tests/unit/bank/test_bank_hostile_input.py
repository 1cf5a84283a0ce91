"""Hostile input at the bank: Italian validation messages on the card page, 400s from the API."""

from __future__ import annotations

from typing import Any

import pytest
from test_bank_charges import charge_body, save_card

from webapp.bank.cards import MSG_EXPIRY, MSG_NUMBER_INVALID
from webapp.bank.extensions import db
from webapp.bank.models import Payment

GOOD = {"holder": "Mario Rossi", "number": "4242424242424242", "exp_month": "12"}
GOOD |= {"exp_year": "2030", "cvv": "123"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("exp_month", "²", MSG_EXPIRY),  # int() accepts it, str.isdigit() is True
        ("exp_month", "１２", MSG_EXPIRY),  # fullwidth digits
        ("exp_month", "٠١", MSG_EXPIRY),  # Arabic-Indic digits
        ("exp_month", "1" * 5000, MSG_EXPIRY),  # int() refuses more than 4,300 digits
        ("exp_year", "²⁰³⁰", MSG_EXPIRY),
        ("exp_year", "２０３０", MSG_EXPIRY),
        ("exp_year", "9" * 5000, MSG_EXPIRY),
        ("number", "4" * 5000, MSG_NUMBER_INVALID),
        ("number", "４２４２４２４２４２４２４２４２", MSG_NUMBER_INVALID),
        ("number", "⁴²⁴²⁴²⁴²⁴²⁴²⁴²⁴²", MSG_NUMBER_INVALID),
        ("cvv", "1" * 5000, "Il CVV deve avere 3 cifre."),
        ("cvv", "１２３", "Il CVV deve avere 3 cifre."),
        ("cvv", "¹²³", "Il CVV deve avere 3 cifre."),
        ("holder", "", "Inserisci l'intestatario della carta."),
        ("holder", "M" * 5000, "Inserisci l'intestatario della carta."),
    ],
    ids=lambda v: v if len(str(v)) < 20 else f"{str(v)[:3]}…{len(v)}",
)
def test_card_page_answers_hostile_fields_with_an_italian_message(
    app, create_payment, customer, field, value, message
) -> None:
    pid = create_payment()
    customer.get(f"/pay/{pid}")
    response = customer.post(f"/pay/{pid}", GOOD | {field: value})
    assert response.status_code == 422
    assert message.replace("'", "&#39;") in response.text
    with app.app_context():
        assert db.session.get(Payment, pid).status == "created"


@pytest.mark.parametrize("field", list(GOOD))
def test_nul_byte_in_any_card_field_is_a_clear_400(app, create_payment, customer, field) -> None:
    pid = create_payment()
    customer.get(f"/pay/{pid}")
    response = customer.post(f"/pay/{pid}", GOOD | {field: GOOD[field] + "\x00"})
    assert response.status_code == 400
    assert "caratteri non ammessi" in response.text
    with app.app_context():
        assert db.session.get(Payment, pid).status == "created"


def test_good_card_still_passes(create_payment, customer) -> None:
    pid = create_payment()
    customer.get(f"/pay/{pid}")
    assert customer.post(f"/pay/{pid}", GOOD).status_code == 303


NOT_OBJECTS = [b"[]", b'[{"amount_cents": 1}]', b'"payment"', b"42", b"null", b"true"]
NOT_OBJECTS += [b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b"{", b""]


@pytest.mark.parametrize("path", ["/api/payments", "/api/charges", "/api/refunds"])
@pytest.mark.parametrize("raw", NOT_OBJECTS, ids=lambda r: repr(r[:12]))
def test_signed_body_that_is_not_an_object_is_400(api, path, raw) -> None:
    import time

    from conftest import MERCHANT, SECRET

    from webapp.signing import sign_request

    headers = sign_request(SECRET, MERCHANT, "POST", path, raw, int(time.time()))
    headers["Content-Type"] = "application/json"
    response = api.client.post(path, data=raw, headers=headers)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


WRONG_TYPES: list[dict[str, Any]] = [
    {"amount_cents": "100"},
    {"amount_cents": 1.5},
    {"amount_cents": None},
    {"amount_cents": [100]},
    {"amount_cents": 10**400},
    {"currency": 978},
    {"order_ref": {"x": 1}},
    {"order_ref": "\ud800"},
    {"description": 3},
    {"idempotency_key": ["k"]},
    {"idempotency_key": "k\x00"},
]


@pytest.mark.parametrize("change", WRONG_TYPES, ids=repr)
def test_payment_fields_of_the_wrong_type_are_400(api, payment_body, change) -> None:
    response = api.post("/api/payments", payment_body(**change))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize(
    "change",
    [*WRONG_TYPES, {"token": 5}, {"initiator": True}, {"initiator": ["customer"]}],
    ids=repr,
)
def test_charge_fields_of_the_wrong_type_are_400(app, api, change) -> None:
    token = save_card(app, "4242424242424242")
    response = api.post("/api/charges", charge_body(token) | change)
    assert response.status_code == 400
    assert api.get("/api/stats").json["charges_succeeded"] == 0
