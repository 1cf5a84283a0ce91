"""PSD2 on saved cards and the hardware token: the issuer asks for 3-D Secure, the order is paid
once on the bank's page; and the third way banks authorise, a code from a hardware token."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    ORDER_URL,
    at_the_bank,
    buy_by_card,
    choose_on_portal,
    click_pay_now,
    enter_card,
    enter_otp,
    open_portal,
    order_state,
    return_to_shop,
)

SCA_CARD = "4000002760003184"  # SMS OTP on the bank's page; token charges need 3-D Secure
TOKEN_CARD = "4000000000003063"  # 3-D Secure with a code from a hardware token


def test_a_saved_card_whose_bank_wants_3ds_pays_once_on_the_bank_page(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    click_pay_now(page)
    enter_card(page, SCA_CARD)
    enter_otp(page)
    return_to_shop(page)  # the card is saved

    order_id = buy_by_card(page, "PEC-PRO")
    open_portal(page)
    choose_on_portal(page, "Visa •••• 3184")
    page.get_by_role("button", name="Procedi").click()
    # The issuer answered "authentication required": no charge, off to the bank's page.
    enter_card(page, SCA_CARD)
    enter_otp(page)
    return_to_shop(page)
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    state = order_state(live, order_id)
    assert state.status == "paid"
    # One declined token charge (no money), then one payment on the bank's page.
    assert sorted(state.payments) == [("hosted_page", "succeeded"), ("saved_card", "declined")]
    bank = at_the_bank(live, order_id)
    assert [c["status"] for c in bank.charges] == ["declined"]
    assert bank.charged() == [] and bank.authorised() == [state.total_cents]


def test_hardware_token_code_authorises_the_payment(page: Page, live, new_customer, login) -> None:
    login(page, new_customer)
    order_id = buy_by_card(page, "PEC-STD")
    click_pay_now(page)
    enter_card(page, TOKEN_CARD)
    expect(page.locator("#token-display")).to_be_visible()
    expect(page.get_by_label("Codice generato dal token")).to_be_visible()
    code = page.locator("#otp-code").inner_text()
    page.get_by_label("Codice generato dal token").fill(code)
    page.get_by_role("button", name="Conferma").click()
    return_to_shop(page)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    assert order_state(live, order_id).status == "paid"
