"""Issue 4, path 2: paying with a card saved on the payment portal."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    ORDER_URL,
    PORTAL_URL,
    AtTheBank,
    ServiceRow,
    add_card_in_area,
    at_the_bank,
    buy_by_card,
    choose_on_portal,
    mails_for_order,
    mails_to,
    one_mail_for_order,
    open_portal,
    order_state,
    pay_first_card,
    saved_cards,
)

INSUFFICIENT_FUNDS_CARD = "4000000000009995"
OTHER_VISA = "4012888888881881"  # any other Luhn-valid number: frictionless


def paid_once(page: Page, login, customer) -> None:
    """A customer who already bought once on path 1 (frictionless Visa •••• 4242)."""
    login(page, customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")


def test_saved_card_pays_the_next_order(page: Page, live, new_customer, login) -> None:
    paid_once(page, login, new_customer)
    # PEC Pro 2 years 50,00 + Firma Digitale 39,90 + Marche 15,00 = 104,90; IVA 23,08.
    order_id = buy_by_card(page, "PEC-PRO", "FIRMA-R", "MARCHE-50", years={"PEC Pro": 2})

    open_portal(page)
    expect(page.locator("#portal-total")).to_have_text("€ 127,98")
    expect(
        page.get_by_text(
            "Il rinnovo automatico non è disponibile per Firma Digitale e Marca Temporale."
        )
    ).to_be_visible()
    options = page.locator("#card-picker label.card-option")
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_contain_text("Visa •••• 4242")
    expect(options.nth(1)).to_have_text("Nuova carta di pagamento")

    choose_on_portal(page, "Visa •••• 4242")
    expect(page.locator("#picker-summary")).to_contain_text(
        "Addebiteremo € 127,98 sulla carta Visa •••• 4242"
    )
    page.get_by_role("button", name="Procedi").click()

    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#flash")).to_contain_text("Pagamento riuscito")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    expect(page.locator("#order-services li", has_text="PEC Pro")).to_contain_text(
        "Rinnovo automatico attivo ogni 2 anni sulla carta Visa •••• 4242"
    )
    bank = at_the_bank(live, order_id)
    assert (bank.charged(), bank.payments) == ([12798], [])  # one charge, no bank page

    state = order_state(live, order_id)
    assert (state.status, state.total_cents) == ("paid", 12798)
    assert state.payments == [("saved_card", "succeeded")]
    assert state.services == [
        ServiceRow("PEC-PRO", True, 2, "4242"),
        ServiceRow("FIRMA-R", False, 1, None),
        ServiceRow("MARCHE-50", False, 1, None),
    ]
    text = one_mail_for_order(live, new_customer, state.number).text
    assert "si rinnoverà ogni 2 anni sulla carta Visa •••• 4242" in text
    assert "- Marche temporali (50): il rinnovo automatico non è disponibile." in text
    assert len(mails_to(live, new_customer)) == 2  # the first order's and this one


def test_insufficient_funds_then_another_card(page: Page, live, new_customer, login) -> None:
    paid_once(page, login, new_customer)
    # It cannot pay a first order, but a zero-amount verification saves it (no money moves).
    check = live.sandbox.movements(payment=add_card_in_area(page, INSUFFICIENT_FUNDS_CARD))
    assert [(p["status"], p["amount_cents"]) for p in check["payments"]] == [("authorised", 0)]
    assert check["charges"] == []
    assert [c[2] for c in saved_cards(live, new_customer)] == ["9995", "4242"]
    order_id = buy_by_card(page, "SPID-PF")  # 9,90 + IVA 2,18

    open_portal(page)
    expect(page.locator("#card-picker label.card-option")).to_have_count(3)
    choose_on_portal(page, "Visa •••• 9995")
    page.get_by_role("button", name="Procedi").click()

    expect(page.locator("#card-picker").get_by_role("alert")).to_have_text(
        "Pagamento non riuscito: Fondi insufficienti. Scegli un'altra carta."
    )
    expect(page).to_have_url(PORTAL_URL)
    state = order_state(live, order_id)
    assert (state.status, state.payments) == ("pending_payment", [("saved_card", "declined")])
    assert at_the_bank(live, order_id).charged() == []
    assert mails_for_order(live, new_customer, state.number) == []

    choose_on_portal(page, "Visa •••• 4242")
    page.get_by_role("button", name="Procedi").click()
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    state = order_state(live, order_id)
    assert (state.status, state.total_cents) == ("paid", 1208)
    assert state.payments == [("saved_card", "declined"), ("saved_card", "succeeded")]
    assert state.services == [ServiceRow("SPID-PF", True, 1, "4242")]
    bank = at_the_bank(live, order_id)
    assert [c["status"] for c in bank.charges] == ["declined", "succeeded"]
    assert bank.charged() == [1208]
    one_mail_for_order(live, new_customer, state.number)


def test_another_customers_card_is_refused(
    page: Page, live, make_customer, login, browser, browser_context_args
) -> None:
    customer, other = make_customer(), make_customer("Luigi Bianchi")
    with browser.new_context(**browser_context_args) as other_context:
        other_page = other_context.new_page()
        login(other_page, other)
        add_card_in_area(other_page, OTHER_VISA)
    [(other_card, _, _)] = saved_cards(live, other)
    paid_once(page, login, customer)
    order_id = buy_by_card(page, "PEC-STD")

    open_portal(page)
    own = page.locator("#card-picker label.card-option", has_text="Visa •••• 4242")
    # A tampered form: the radio now carries the id of someone else's card.
    own.get_by_role("radio").evaluate("(el, value) => { el.value = value }", str(other_card))
    page.get_by_role("button", name="Procedi").click()

    expect(page.locator("#card-picker").get_by_role("alert")).to_have_text("Carta non trovata.")
    expect(page.locator("#card-picker")).not_to_contain_text("1881")
    assert at_the_bank(live, order_id) == AtTheBank([], [], [])  # nothing asked of the bank
    state = order_state(live, order_id)
    assert (state.status, state.payments) == ("pending_payment", [])
    assert mails_to(live, other) == []

    # The order is still payable with the customer's own card.
    choose_on_portal(page, "Visa •••• 4242")
    page.get_by_role("button", name="Procedi").click()
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    state = order_state(live, order_id)
    assert (state.status, state.payments) == ("paid", [("saved_card", "succeeded")])
    assert state.services == [ServiceRow("PEC-STD", True, 1, "4242")]
    one_mail_for_order(live, customer, state.number)
