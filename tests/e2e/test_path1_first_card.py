"""Issue 3, path 1: a customer with no saved card pays on the bank's hosted page."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    BANK_CARD_URL,
    ServiceRow,
    bank_notified,
    buy_by_card,
    click_pay_now,
    decide_in_app,
    enter_card,
    enter_otp,
    mails_for_order,
    mails_to,
    one_mail_for_order,
    order_state,
    return_to_shop,
    saved_cards,
)

OTP_CARD = "4111111111111111"
APP_CARD = "5555555555554444"
FRICTIONLESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
# PEC Standard 5,00 + Firma Digitale Remota 39,90 = 44,90 net; IVA 9,88; total 54,78.
TOTAL = "€ 54,78"
TOTAL_CENTS = 5478


def expect_paid_order_page(page: Page, masked_card: str) -> None:
    expect(page.locator("#flash")).to_contain_text("Pagamento riuscito")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    expect(page.locator("#order-status")).to_contain_text("Pagato il")
    expect(page.get_by_role("button", name="Paga ora su server sicuro")).to_have_count(0)
    services = page.locator("#order-services li")
    expect(services.filter(has_text="PEC Standard")).to_contain_text(
        f"Rinnovo automatico attivo ogni anno sulla carta {masked_card}"
    )
    expect(services.filter(has_text="Firma Digitale Remota")).to_contain_text(
        "il rinnovo automatico non è disponibile"
    )
    expect(services.filter(has_text="Firma Digitale Remota")).not_to_contain_text(
        "Rinnovo automatico attivo"
    )


def assert_paid(live, order_id: int, last4: str) -> str:
    """Order, payment and services in the database; returns the order number."""
    state = order_state(live, order_id)
    assert state.status == "paid"
    assert state.total_cents == TOTAL_CENTS
    assert state.payments == [("hosted_page", "succeeded")]
    assert state.services == [
        ServiceRow("PEC-STD", True, 1, last4),
        ServiceRow("FIRMA-R", False, 1, None),
    ]
    return state.number


@pytest.mark.parametrize("card", [OTP_CARD, APP_CARD], ids=["sms-otp", "app-approval"])
def test_first_card_pays_saves_card_and_mails_once(
    page: Page, live, new_customer, login, card: str
) -> None:
    login(page, new_customer)
    order_id = buy_by_card(page, "PEC-STD", "FIRMA-R")
    expect(page.locator("#order-total")).to_have_text(TOTAL)

    click_pay_now(page)
    expect(page).to_have_url(BANK_CARD_URL)
    expect(page.locator("#payment-summary")).to_contain_text(TOTAL)
    payment_id = enter_card(page, card)
    if card == OTP_CARD:
        enter_otp(page)
    else:
        decide_in_app(page, live, payment_id, approve=True)
    return_url = return_to_shop(page)

    brand = "Visa" if card == OTP_CARD else "Mastercard"
    masked = f"{brand} •••• {card[-4:]}"
    expect_paid_order_page(page, masked)
    number = assert_paid(live, order_id, card[-4:])
    assert [c[1:] for c in saved_cards(live, new_customer)] == [(brand.lower(), card[-4:])]

    mail = one_mail_for_order(live, new_customer, number)
    text = mail.text
    assert f"ordine {number}" in mail.subject
    assert "Rinnovo automatico attivato per:" in text
    assert "- PEC Standard: scade il" in text
    assert f"si rinnoverà ogni anno sulla carta {masked}" in text
    assert "- Firma Digitale Remota: il rinnovo automatico non è disponibile." in text
    assert f"Carta: {masked}" in text
    assert f"Totale pagato: {TOTAL}" in text

    # The bank's notification has arrived too; now replay the return URL.
    bank_notified(live, payment_id)
    response = page.goto(return_url)
    assert response is not None and response.ok
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    assert assert_paid(live, order_id, card[-4:]) == number
    assert len(mails_to(live, new_customer)) == 1


def test_declined_card_leaves_order_payable(page: Page, live, new_customer, login) -> None:
    login(page, new_customer)
    order_id = buy_by_card(page, "PEC-STD", "FIRMA-R")
    click_pay_now(page)
    payment_id = enter_card(page, DECLINED_CARD)
    expect(page.locator("#payment-result")).to_contain_text(
        "Carta rifiutata dalla banca emittente."
    )
    return_to_shop(page, heading="Pagamento non autorizzato")

    expect(page.locator("#flash").get_by_role("alert")).to_have_text(
        "Pagamento non riuscito: Carta rifiutata dalla banca emittente. "
        "Puoi riprovare con un'altra carta."
    )
    expect(page.locator("#order-status")).to_have_attribute("data-status", "pending_payment")
    expect(page.get_by_role("button", name="Paga ora su server sicuro")).to_be_visible()
    bank_notified(live, payment_id)
    state = order_state(live, order_id)
    assert (state.status, state.payments, state.services) == (
        "pending_payment",
        [("hosted_page", "declined")],
        [],
    )
    assert saved_cards(live, new_customer) == []
    assert mails_to(live, new_customer) == []

    # Still payable: another card goes through, on a new bank payment.
    click_pay_now(page)
    second = enter_card(page, FRICTIONLESS_CARD)
    assert second != payment_id
    return_to_shop(page)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    state = order_state(live, order_id)
    assert state.payments == [("hosted_page", "declined"), ("hosted_page", "succeeded")]
    one_mail_for_order(live, new_customer, state.number)


def test_wrong_otp_three_times_fails_3ds(page: Page, live, new_customer, login) -> None:
    login(page, new_customer)
    order_id = buy_by_card(page, "PEC-STD", "FIRMA-R")
    click_pay_now(page)
    payment_id = enter_card(page, OTP_CARD)
    shown = page.locator("#otp-code").inner_text()
    wrong = "000000" if shown != "000000" else "111111"
    for left in (2, 1):
        enter_otp(page, wrong)
        expect(page.get_by_role("alert")).to_have_text(f"Codice errato. Tentativi rimasti: {left}")
    enter_otp(page, wrong)
    expect(page.locator("#payment-result")).to_contain_text(
        "Autenticazione 3-D Secure non riuscita."
    )
    return_to_shop(page, heading="Autenticazione non riuscita")

    expect(page.locator("#flash").get_by_role("alert")).to_contain_text(
        "Pagamento non riuscito: Autenticazione 3-D Secure non riuscita."
    )
    expect(page.locator("#order-status")).to_have_attribute("data-status", "pending_payment")
    expect(page.get_by_role("button", name="Paga ora su server sicuro")).to_be_visible()
    bank_notified(live, payment_id)
    state = order_state(live, order_id)
    assert (state.status, state.payments) == ("pending_payment", [("hosted_page", "failed")])
    assert mails_to(live, new_customer) == []


def _forge(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(params)))


def test_forged_return_url_is_refused(page: Page, live, new_customer, login) -> None:
    login(page, new_customer)
    order_id = buy_by_card(page, "PEC-STD", "FIRMA-R")
    click_pay_now(page)
    payment_id = enter_card(page, DECLINED_CARD)
    expect(page.locator("#payment-result h1")).to_have_text("Pagamento non autorizzato")
    genuine = page.get_by_role("link", name="torna al negozio").get_attribute("href")
    assert genuine and dict(parse_qsl(urlsplit(genuine).query))["status"] == "declined"

    forgeries = [
        _forge(genuine, status="authorised"),
        _forge(genuine, amount_cents="1"),
        _forge(genuine, sig="0" * 64),
        _forge(genuine, status="authorised", sig="0" * 64),
    ]
    for forged in forgeries:
        response = page.goto(forged)
        assert response is not None and response.status == 400, forged

    bank_notified(live, payment_id)
    state = order_state(live, order_id)
    assert (state.status, state.payments, state.services) == (
        "pending_payment",
        [("hosted_page", "declined")],
        [],
    )
    assert mails_for_order(live, new_customer, state.number) == []
    page.goto(f"/ordini/{order_id}")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "pending_payment")
