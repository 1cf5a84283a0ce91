"""Issue 4, path 3: a customer with a saved card adds another ("Nuova carta di pagamento")."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    BANK_CARD_URL,
    ServiceRow,
    bank_notified,
    buy_by_card,
    choose_on_portal,
    decide_in_app,
    enter_card,
    enter_otp,
    mails_to,
    one_mail_for_order,
    open_portal,
    order_state,
    pay_first_card,
    return_to_shop,
    saved_cards,
)


@pytest.mark.parametrize(
    ("number", "masked"),
    [("5555555555554444", "Mastercard •••• 4444"), ("4111111111111111", "Visa •••• 1111")],
    ids=["app-approval", "sms-otp"],
)
def test_new_card_from_portal(
    page: Page, live, new_customer, login, number: str, masked: str
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")
    order_id = buy_by_card(page, "CONS-1", "FPA-100", years={"Conservazione digitale 1 GB": 3})

    open_portal(page)
    choose_on_portal(page, "Nuova carta di pagamento")
    expect(page.locator("#picker-summary")).to_contain_text(
        "Sarai reindirizzato al sito della banca"
    )
    page.get_by_role("button", name="Procedi").click()
    expect(page).to_have_url(BANK_CARD_URL)
    payment_id = enter_card(page, number)
    if number.startswith("5"):
        decide_in_app(page, live, payment_id, approve=True)
    else:
        enter_otp(page)
    return_to_shop(page)

    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    expect(page.locator("#order-services li", has_text="Conservazione")).to_contain_text(
        f"Rinnovo automatico attivo ogni 3 anni sulla carta {masked}"
    )
    state = order_state(live, order_id)
    assert state.status == "paid"
    assert state.payments == [("hosted_page", "succeeded")]
    assert state.services == [
        ServiceRow("CONS-1", True, 3, number[-4:]),
        ServiceRow("FPA-100", True, 1, number[-4:]),
    ]
    text = one_mail_for_order(live, new_customer, state.number).text
    assert f"si rinnoverà ogni 3 anni sulla carta {masked}" in text
    bank_notified(live, payment_id)
    assert len(mails_to(live, new_customer)) == 2
    assert [c[2] for c in saved_cards(live, new_customer)] == [number[-4:], "4242"]

    # The next order's portal offers both cards, the newest first and preselected.
    buy_by_card(page, "PEC-STD")
    open_portal(page)
    options = page.locator("#card-picker label.card-option")
    expect(options).to_have_count(3)
    expect(options.nth(0)).to_contain_text(masked)
    expect(options.nth(0).get_by_role("radio")).to_be_checked()
    expect(options.nth(1)).to_contain_text("Visa •••• 4242")
    expect(options.nth(2)).to_have_text("Nuova carta di pagamento")
