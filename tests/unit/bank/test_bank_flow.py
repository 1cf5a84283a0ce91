"""The hosted pages, end to end with the test client, for every test card."""

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from webapp.bank.extensions import db
from webapp.bank.models import Card, Payment
from webapp.signing import BadSignature, verify_params

SECRET = "test-bank-secret"
CARD_OTP = "4111 1111 1111 1111"
CARD_APP = "5555 5555 5555 4444"
CARD_FRICTIONLESS = "4242 4242 4242 4242"
CARD_AMEX = "3782 822463 10005"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_NO_FUNDS = "4000 0000 0000 9995"
CARD_EXPIRED = "4000 0000 0000 0069"


def status_of(api, pid: str) -> dict:
    return api.get(f"/api/payments/{pid}").json


def signed_params(customer, pid: str) -> dict[str, str]:
    """The query parameters of 'torna al negozio', checked against the shared secret."""
    params = dict(parse_qsl(urlsplit(customer.return_link(pid)).query))
    verify_params(SECRET, params)
    return params


def test_card_page_shows_payment_and_form(client, create_payment) -> None:
    pid = create_payment()
    page = client.get(f"/pay/{pid}")
    assert page.status_code == 200
    text = page.text
    for words in ("Banca Sella · Sandbox", "Ambiente di prova: nessun addebito reale", "Procedi"):
        assert words in text
    assert "€ 1.234,56" in text
    assert "PEC Pro, 1 anno" in text
    assert "Riferimento ordine" not in text  # one reference: the description (issue 26)
    for label in ("Intestatario della carta", "Numero carta", "Scadenza", "CVV"):
        assert label in text
    assert "<script>" not in text and "style=" not in text


def test_unknown_payment_page_is_404(client) -> None:
    page = client.get("/pay/pay_unknown")
    assert page.status_code == 404
    assert "Pagamento non trovato." in page.text


def test_invalid_card_rerenders_422_without_the_number(customer, create_payment, api) -> None:
    pid = create_payment()
    response = customer.enter_card(pid, "4111 1111 1111 1112", holder="Mario Rossi", cvv="12")
    assert response.status_code == 422
    assert "Il numero della carta non è valido." in response.text
    assert "Il CVV deve avere 3 cifre." in response.text
    assert "4111" not in response.text and "1112" not in response.text
    assert 'value="Mario Rossi"' in response.text
    assert status_of(api, pid)["status"] == "created"


def test_expired_and_missing_fields_messages(customer, create_payment) -> None:
    pid = create_payment()
    response = customer.enter_card(pid, CARD_FRICTIONLESS, holder="", month="02", year="2026")
    assert response.status_code == 422
    assert "La carta è scaduta." in response.text
    assert "Inserisci l&#39;intestatario della carta." in response.text


def test_amex_needs_four_digit_cvv(customer, create_payment) -> None:
    pid = create_payment()
    response = customer.enter_card(pid, CARD_AMEX, cvv="123")
    assert response.status_code == 422
    assert "Il CVV deve avere 4 cifre." in response.text


def test_procedi_shows_summary_with_masked_number(customer, create_payment, api) -> None:
    pid = create_payment()
    response = customer.enter_card(pid, CARD_OTP, holder="Mario Rossi", month="07", year="2029")
    assert response.status_code == 303
    summary = customer.get(f"/pay/{pid}")
    assert summary.status_code == 200
    text = summary.text
    assert "•••• •••• •••• 1111" in text
    assert "4111 1111" not in text and "4111111111111111" not in text
    assert "Visa" in text and "07/2029" in text and "Mario Rossi" in text
    assert "€ 1.234,56" in text and "Invio dati" in text
    assert status_of(api, pid)["status"] == "pending_confirmation"


def test_going_back_to_correct_the_card(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.enter_card(pid, CARD_OTP, holder="Mario Rossi")
    edit = customer.get(f"/pay/{pid}/edit")
    assert edit.status_code == 200
    assert 'value="Mario Rossi"' in edit.text and "4111" not in edit.text
    customer.enter_card(pid, CARD_FRICTIONLESS, holder="Maria Bianchi")
    assert "•••• •••• •••• 4242" in customer.get(f"/pay/{pid}").text
    with app.app_context():
        assert db.session.get(Payment, pid).holder == "Maria Bianchi"


def test_frictionless_card_is_authorised(customer, create_payment, api) -> None:
    pid = create_payment()
    response = customer.pay(pid, CARD_FRICTIONLESS)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/pay/{pid}/result")
    result = customer.get(f"/pay/{pid}/result")
    assert "Pagamento autorizzato" in result.text and "torna al negozio" in result.text
    body = status_of(api, pid)
    assert body["status"] == "authorised"
    assert body["card"]["brand"] == "visa" and body["card"]["last4"] == "4242"
    assert api.get("/api/stats").json["payments_authorised"] == 1


def test_amex_is_frictionless(customer, create_payment, api) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_AMEX)
    card = status_of(api, pid)["card"]
    assert (card["brand"], card["last4"]) == ("amex", "0005")


def test_sms_otp_right_code_authorises(customer, create_payment, api) -> None:
    pid = create_payment()
    response = customer.pay(pid, CARD_OTP)
    assert response.headers["Location"].endswith(f"/pay/{pid}")
    page = customer.get(f"/pay/{pid}")
    sms = (
        "SMS da Banca Sella: il codice per autorizzare il pagamento di €\u00a01.234,56 a PEC Shop è"
    )
    assert sms in page.text
    assert "Codice OTP" in page.text and "Conferma" in page.text
    assert status_of(api, pid)["status"] == "challenge"
    response = customer.send_otp(pid, customer.otp_code(pid))
    assert response.status_code == 303
    assert status_of(api, pid)["status"] == "authorised"
    assert "Pagamento autorizzato" in customer.get(f"/pay/{pid}/result").text


def test_otp_is_random_per_payment(customer, create_payment) -> None:
    codes = set()
    for n in range(4):
        pid = create_payment(idempotency_key=f"k{n}")
        customer.pay(pid, CARD_OTP)
        codes.add(customer.otp_code(pid))
    assert len(codes) > 1


def test_three_wrong_otps_fail_the_payment(customer, create_payment, api) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_OTP)
    right = customer.otp_code(pid)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    first = customer.send_otp(pid, wrong)
    assert first.status_code == 422 and "Codice errato. Tentativi rimasti: 2" in first.text
    second = customer.send_otp(pid, wrong)
    assert "Codice errato. Tentativi rimasti: 1" in second.text
    third = customer.send_otp(pid, wrong)
    assert third.status_code == 303
    body = status_of(api, pid)
    assert body["status"] == "failed" and body["card"] is None
    assert body["decline_message"] == "Autenticazione 3-D Secure non riuscita."
    assert "Autenticazione 3-D Secure non riuscita." in customer.get(f"/pay/{pid}/result").text
    # The right code after the failure changes nothing.
    assert customer.send_otp(pid, right).status_code == 303
    assert status_of(api, pid)["status"] == "failed"


def test_malformed_otp_does_not_use_an_attempt(customer, create_payment, app) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_OTP)
    response = customer.send_otp(pid, "12ab")
    assert response.status_code == 422 and "6 cifre" in response.text
    with app.app_context():
        assert db.session.get(Payment, pid).otp_failures == 0


@pytest.mark.parametrize(("approve", "final"), [(True, "authorised"), (False, "failed")])
def test_app_approval(customer, client, create_payment, api, approve, final) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_APP)
    wait = customer.get(f"/pay/{pid}")
    assert "Apri l'app della tua banca per autorizzare il pagamento" in wait.text
    assert 'hx-trigger="every 2s"' in wait.text
    assert f'hx-get="/pay/{pid}/app/status"' in wait.text
    assert "htmx-2.0.11.min.js" in wait.text
    assert "Apri l'app della banca (simulata)" in wait.text
    polled = client.get(f"/pay/{pid}/app/status", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "HX-Redirect" not in polled.headers
    assert "<html" not in polled.text and 'id="app-status"' in polled.text
    assert polled.headers["Vary"] == "HX-Request"
    phone = customer.get(f"/app/{pid}")
    assert "Approva" in phone.text and "Rifiuta" in phone.text
    assert customer.decide(pid, approve).status_code == 303
    body = status_of(api, pid)
    assert body["status"] == final
    assert (body["card"] is not None) is approve
    polled = client.get(f"/pay/{pid}/app/status", headers={"HX-Request": "true"})
    assert polled.headers["HX-Redirect"] == f"/pay/{pid}/result"
    plain = client.get(f"/pay/{pid}/app/status")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/pay/{pid}/result"
    result = customer.get(f"/pay/{pid}/result").text
    assert ("Pagamento autorizzato" in result) is approve
    assert signed_params(customer, pid)["status"] == final


@pytest.mark.parametrize(
    ("number", "code", "message"),
    [
        (CARD_DECLINED, "card_declined", "Carta rifiutata dalla banca emittente."),
        (CARD_NO_FUNDS, "insufficient_funds", "Fondi insufficienti."),
        (CARD_EXPIRED, "expired_card", "Carta scaduta."),
    ],
)
def test_declining_cards(customer, create_payment, api, number, code, message) -> None:
    pid = create_payment()
    response = customer.pay(pid, number)
    assert response.headers["Location"].endswith(f"/pay/{pid}/result")
    body = status_of(api, pid)
    assert (body["status"], body["decline_code"], body["decline_message"]) == (
        "declined",
        code,
        message,
    )
    assert body["card"] is None
    result = customer.get(f"/pay/{pid}/result").text
    assert message in result and "torna al negozio" in result
    assert signed_params(customer, pid)["status"] == "declined"
    assert api.get("/api/stats").json["payments_authorised"] == 0


def test_zero_amount_verification_of_no_funds_card_saves_it(customer, create_payment, api, app):
    pid = create_payment(amount_cents=0, description="Aggiungi carta")
    assert "€ 0,00" in customer.get(f"/pay/{pid}").text
    customer.pay(pid, CARD_NO_FUNDS, month="05", year="2031")
    body = status_of(api, pid)
    assert body["status"] == "authorised"
    card = body["card"]
    assert card["token"].startswith("tok_")
    assert card == {
        "token": card["token"],
        "brand": "visa",
        "last4": "9995",
        "exp_month": 5,
        "exp_year": 2031,
        "holder": "Mario Rossi",
    }
    assert "Carta verificata" in customer.get(f"/pay/{pid}/result").text
    with app.app_context():
        assert db.session.get(Card, card["token"]).pan == "4000000000009995"


def test_zero_amount_declined_card_is_still_declined(customer, create_payment, api) -> None:
    pid = create_payment(amount_cents=0)
    customer.pay(pid, CARD_DECLINED)
    assert status_of(api, pid)["decline_code"] == "card_declined"


def test_card_token_only_when_save_card(customer, create_payment, api) -> None:
    pid = create_payment(save_card=False)
    customer.pay(pid, CARD_FRICTIONLESS)
    body = status_of(api, pid)
    assert body["status"] == "authorised" and body["card"] is None


def test_card_token_not_before_authorisation(customer, create_payment, api) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_OTP)
    assert status_of(api, pid)["card"] is None


def test_api_and_pages_never_show_the_full_number(customer, create_payment, api) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_FRICTIONLESS)
    assert "4242424242424242" not in api.get(f"/api/payments/{pid}").text
    assert "4242424242424242" not in customer.get(f"/pay/{pid}/result").text


def test_return_url_is_signed_and_stable(customer, create_payment, clock) -> None:
    pid = create_payment(return_url="http://shop.test/ritorno?order=17")
    customer.pay(pid, CARD_FRICTIONLESS)
    link = customer.return_link(pid)
    assert link.startswith("http://shop.test/ritorno?")
    params = signed_params(customer, pid)
    assert params == params | {
        "order": "17",
        "payment_id": pid,
        "order_ref": "ORD-0001",
        "status": "authorised",
        "amount_cents": "123456",
        "currency": "EUR",
        "ts": str(int(clock.now.timestamp())),
    }
    clock.advance(minutes=5)
    assert customer.return_link(pid) == link  # the same link on reload
    with pytest.raises(BadSignature):
        verify_params(SECRET, params | {"amount_cents": "1"})


def test_result_page_has_a_plain_link_back(customer, create_payment) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_FRICTIONLESS)
    page = customer.get(f"/pay/{pid}/result").text
    assert re.search(r'<a id="return-link"[^>]*href="http://shop\.test/', page)


@pytest.mark.parametrize("step", ["card form", "summary"])
def test_annulla_e_torna_al_negozio_fails_the_payment_and_goes_back(
    customer, create_payment, api, step
) -> None:
    pid = create_payment()
    if step == "summary":
        assert customer.enter_card(pid, CARD_FRICTIONLESS).status_code == 303
    page = customer.get(f"/pay/{pid}").text
    assert "Annulla e torna al negozio" in page
    back = customer.post(f"/pay/{pid}/cancel")
    assert back.status_code == 303
    params = dict(parse_qsl(urlsplit(back.headers["Location"]).query))
    verify_params(SECRET, params)  # the same signed return as 'torna al negozio'
    assert params["payment_id"] == pid
    answer = status_of(api, pid)
    assert answer["status"] == "failed" and answer["decline_code"] == "cancelled"
    assert answer["decline_message"].startswith("Pagamento annullato")
    # Cancelled is final: a second click, or the card form posted late, change nothing.
    assert customer.post(f"/pay/{pid}/cancel").status_code == 303
    customer.enter_card(pid, CARD_FRICTIONLESS)
    assert status_of(api, pid)["status"] == "failed"


def test_a_paid_payment_cannot_be_cancelled(customer, create_payment, api) -> None:
    pid = create_payment()
    customer.pay(pid, CARD_FRICTIONLESS)
    customer.get(f"/pay/{pid}/result")
    response = customer.post(f"/pay/{pid}/cancel")
    assert response.status_code == 303 and response.headers["Location"].endswith("/result")
    assert status_of(api, pid)["status"] == "authorised"


def test_annulla_after_a_twin_authorised_the_payment_changes_nothing(
    app, customer, create_payment, api
) -> None:
    """'Invio dati' and 'Annulla' at the same instant: the request that read the summary before
    the other one's commit must not turn an authorised payment into a cancelled one."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from webapp.bank import payments
    from webapp.bank.errors import InvalidTransition
    from webapp.bank.models import PaymentStatus

    pid = create_payment()
    assert customer.enter_card(pid, CARD_FRICTIONLESS).status_code == 303
    with app.app_context():
        stale = db.session.get(Payment, pid)  # read at the summary, before the twin's commit
        assert stale.status is PaymentStatus.PENDING_CONFIRMATION
        with db.engine.begin() as twin:  # the twin's "Invio dati" authorised it meanwhile
            twin.execute(
                update(Payment).where(Payment.id == pid).values(status=PaymentStatus.AUTHORISED)
            )
        with pytest.raises(InvalidTransition):
            payments.cancel_payment(stale, now=datetime(2026, 12, 7, tzinfo=UTC))
        db.session.rollback()
    assert status_of(api, pid)["status"] == "authorised"
