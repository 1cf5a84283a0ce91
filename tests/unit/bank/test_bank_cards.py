"""Card rules: Luhn, brand, CVV length, expiry and the sandbox's test cards."""

from datetime import date

import pytest

from webapp.bank import cards
from webapp.bank.cards import Behaviour

TODAY = date(2026, 3, 15)


@pytest.mark.parametrize("number", [*cards.TEST_CARDS, "4012888888881881", "5105105105105100"])
def test_luhn_accepts_valid_numbers(number: str) -> None:
    assert cards.luhn_ok(number)


@pytest.mark.parametrize(
    "number", ["4111111111111112", "4242424242424241", "12345", "4111x11111111111", "", "0" * 20]
)
def test_luhn_rejects_invalid_numbers(number: str) -> None:
    assert not cards.luhn_ok(number)


def test_luhn_rejects_non_ascii_digits() -> None:
    assert not cards.luhn_ok("٤١١١١١١١١١١١١١١١")  # Arabic-Indic digits are isdigit() too


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("2720990000000007", "mastercard"),
        ("378282246310005", "amex"),
        ("371449635398431", "amex"),
        ("6011111111111117", None),  # Discover: not accepted
        ("2721000000000004", None),
        ("3530111333300000", None),  # JCB
    ],
)
def test_detect_brand(number: str, brand: str | None) -> None:
    assert cards.detect_brand(number) == brand


def test_cvv_length_by_brand() -> None:
    assert cards.cvv_length("amex") == 4
    assert cards.cvv_length("visa") == 3
    assert cards.cvv_length("mastercard") == 3


def test_card_valid_until_end_of_expiry_month() -> None:
    assert not cards.is_expired(3, 2026, TODAY)
    assert cards.is_expired(2, 2026, TODAY)
    assert cards.is_expired(12, 2025, TODAY)
    assert not cards.is_expired(1, 2027, TODAY)


def test_test_card_behaviours() -> None:
    assert cards.behaviour_for("4111111111111111") is Behaviour.SMS_OTP
    assert cards.behaviour_for("5555555555554444") is Behaviour.APP
    assert cards.behaviour_for("4000000000000002") is Behaviour.DECLINED
    assert cards.behaviour_for("4000000000009995") is Behaviour.INSUFFICIENT_FUNDS
    assert cards.behaviour_for("4000000000000069") is Behaviour.EXPIRED
    assert cards.behaviour_for("4012888888881881") is Behaviour.FRICTIONLESS


def test_validate_card_normalises_a_good_card() -> None:
    card, errors = cards.validate_card(
        "  Mario   Rossi ", "4111 1111-1111 1111", "3", "26", "123", TODAY
    )
    assert errors == {}
    assert card is not None
    assert (card.holder, card.number, card.brand) == ("Mario Rossi", "4111111111111111", "visa")
    assert (card.exp_month, card.exp_year, card.last4) == (3, 2026, "1111")


def test_validate_card_amex_needs_four_digit_cvv() -> None:
    card, errors = cards.validate_card("A B", "3782 822463 10005", "12", "2030", "123", TODAY)
    assert card is None
    assert errors == {"cvv": "Il CVV deve avere 4 cifre."}
    card, errors = cards.validate_card("A B", "3782 822463 10005", "12", "2030", "1234", TODAY)
    assert card is not None and card.brand == "amex"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"holder": " "}, "holder", "Inserisci l'intestatario della carta."),
        ({"number": ""}, "number", "Inserisci il numero della carta."),
        ({"number": "4111 1111 1111 1112"}, "number", "Il numero della carta non è valido."),
        ({"number": "6011 1111 1111 1117"}, "number", "Circuito non accettato"),
        ({"month": "13"}, "expiry", "Indica la scadenza della carta (mese e anno)."),
        ({"year": ""}, "expiry", "Indica la scadenza della carta (mese e anno)."),
        ({"month": "02", "year": "2026"}, "expiry", "La carta è scaduta."),
        ({"cvv": "12"}, "cvv", "Il CVV deve avere 3 cifre."),
        ({"cvv": "1234"}, "cvv", "Il CVV deve avere 3 cifre."),
        ({"cvv": "12a"}, "cvv", "Il CVV deve avere 3 cifre."),
    ],
)
def test_validate_card_errors(fields: dict[str, str], field: str, message: str) -> None:
    values = {"holder": "Mario Rossi", "number": "4242 4242 4242 4242", "month": "12"}
    values |= {"year": "2030", "cvv": "123"} | fields
    card, errors = cards.validate_card(
        values["holder"], values["number"], values["month"], values["year"], values["cvv"], TODAY
    )
    assert card is None
    assert list(errors) == [field]
    assert errors[field].startswith(message)
