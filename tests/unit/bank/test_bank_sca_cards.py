"""The PSD2 "authentication required" test card and the hardware-token 3-D Secure method."""

from __future__ import annotations

import pytest
from test_bank_charges import charge_body

from webapp.bank.cards import TEST_CARDS, Behaviour, luhn_ok
from webapp.bank.extensions import db
from webapp.bank.models import Payment

CARD_SCA = "4000002760003184"
CARD_TOKEN = "4000000000003063"


def test_new_test_cards_are_luhn_valid_visa_in_the_table() -> None:
    assert luhn_ok(CARD_SCA) and luhn_ok(CARD_TOKEN)
    assert TEST_CARDS[CARD_SCA] is Behaviour.SCA_REQUIRED
    assert TEST_CARDS[CARD_TOKEN] is Behaviour.HW_TOKEN


def test_home_page_lists_the_new_cards(client) -> None:
    page = client.get("/").text
    assert "4000 0027 6000 3184" in page
    assert "authentication_required" in page
    assert "4000 0000 0000 3063" in page
    assert "codice generato dal token" in page


def _saved_sca_card(api, create_payment, customer) -> str:
    """Pay with the SCA card through the SMS code, saving it; returns the token."""
    pid = create_payment()
    customer.pay(pid, CARD_SCA)
    page = customer.get(f"/pay/{pid}").text
    assert 'id="sms-message"' in page  # the SMS challenge, like 4111…
    response = customer.send_otp(pid, customer.otp_code(pid))
    assert response.status_code == 303
    status = api.get(f"/api/payments/{pid}").json
    assert status["status"] == "authorised"
    assert status["card"]["last4"] == "3184"
    return status["card"]["token"]


def test_sca_card_customer_initiated_charge_needs_authentication(
    api, create_payment, customer
) -> None:
    token = _saved_sca_card(api, create_payment, customer)
    response = api.post("/api/charges", charge_body(token, initiator="customer"))
    assert response.status_code == 201
    assert response.json["status"] == "declined"
    assert response.json["decline_code"] == "authentication_required"
    assert "3-D Secure" in response.json["decline_message"]
    assert api.get("/api/stats").json["charges_succeeded"] == 0


def test_sca_card_merchant_initiated_renewal_succeeds(api, create_payment, customer) -> None:
    token = _saved_sca_card(api, create_payment, customer)
    response = api.post("/api/charges", charge_body(token, initiator="merchant"))
    assert response.json["status"] == "succeeded"
    assert response.json["decline_code"] is None


def test_token_card_challenge_shows_the_token_device(create_payment, customer) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_TOKEN)
    page = customer.get(f"/pay/{pid}").text
    assert 'aria-label="Token simulato"' in page
    assert "Codice generato dal token" in page
    assert 'id="sms-message"' not in page
    assert len(customer.otp_code(pid)) == 6


def test_token_code_authorises(app, api, create_payment, customer) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_TOKEN)
    response = customer.send_otp(pid, customer.otp_code(pid))
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/pay/{pid}/result")
    assert api.get(f"/api/payments/{pid}").json["status"] == "authorised"
    with app.app_context():
        assert db.session.get(Payment, pid).challenge_method == "token"


def test_wrong_token_codes_count_toward_the_same_limit(api, create_payment, customer) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_TOKEN)
    right = customer.otp_code(pid)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for left in (2, 1):
        response = customer.send_otp(pid, wrong)
        assert response.status_code == 422
        assert f"Tentativi rimasti: {left}" in response.text
        assert 'aria-label="Token simulato"' in response.text
    assert customer.send_otp(pid, wrong).status_code == 303
    status = api.get(f"/api/payments/{pid}").json
    assert (status["status"], status["decline_code"]) == ("failed", "authentication_failed")
    # Too late for the right code.
    assert customer.send_otp(pid, right).status_code == 303
    assert api.get(f"/api/payments/{pid}").json["status"] == "failed"


@pytest.mark.parametrize("code", ["12345", "１２３４５６", "²²²²²²", "12a456", "1234567"])
def test_malformed_token_code_is_not_an_attempt(app, create_payment, customer, code) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_TOKEN)
    response = customer.send_otp(pid, code)
    assert response.status_code == 422
    assert "6 cifre" in response.text
    with app.app_context():
        assert db.session.get(Payment, pid).otp_failures == 0
