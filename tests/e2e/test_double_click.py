"""Impatient customers: double clicks and twin submissions create one order and one charge."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    ORDER_URL,
    ServiceRow,
    add_to_cart,
    at_the_bank,
    buy_by_card,
    choose_card_method,
    choose_on_portal,
    one_mail_for_order,
    open_portal,
    order_id_of,
    order_ids,
    order_state,
    pay_first_card,
)

# Posts the form twice at the same instant, as two tabs or a retried request would.
TWIN_SUBMIT = """async (selector) => {
  const form = document.querySelector(selector);
  const body = new URLSearchParams(new FormData(form));
  const send = () => fetch(form.action, {method: "POST", body}).then(r => [r.status, r.url]);
  return Promise.all([send(), send()]);
}"""


def successful_payments(live, order_id: int) -> int:
    return sum(status == "succeeded" for _, status in order_state(live, order_id).payments)


def start_checkout(page: Page) -> None:
    page.goto("/")
    add_to_cart(page, "PEC-STD", "FIRMA-R")
    page.goto("/checkout")
    choose_card_method(page)
    page.get_by_label("condizioni generali di contratto").check()


def test_double_click_confirm_creates_one_order(page: Page, live, new_customer, login) -> None:
    login(page, new_customer)
    start_checkout(page)
    page.get_by_role("button", name="Conferma e completa l'ordine").dblclick()
    expect(page).to_have_url(ORDER_URL)
    assert order_ids(live, new_customer) == [order_id_of(page)]


def test_twin_confirm_posts_create_one_order(page: Page, live, new_customer, login) -> None:
    login(page, new_customer)
    start_checkout(page)
    results = page.evaluate(TWIN_SUBMIT, "#checkout-confirm")
    assert [status for status, _ in results] == [200, 200], results
    assert results[0][1] == results[1][1] and ORDER_URL.search(results[0][1]), results
    assert len(order_ids(live, new_customer)) == 1


def customer_at_portal(page: Page, login, customer) -> int:
    """A customer with a saved Visa •••• 4242 and a second order open on the portal."""
    login(page, customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")
    order_id = buy_by_card(page, "SPID-PF", "FIRMA-R")
    open_portal(page)
    choose_on_portal(page, "Visa •••• 4242")
    return order_id


def test_double_click_procedi_charges_once(page: Page, live, new_customer, login) -> None:
    order_id = customer_at_portal(page, login, new_customer)
    page.get_by_role("button", name="Procedi").dblclick()
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")

    state = order_state(live, order_id)
    assert at_the_bank(live, order_id).charged() == [state.total_cents]
    assert state.status == "paid"
    assert state.services == [
        ServiceRow("SPID-PF", True, 1, "4242"),
        ServiceRow("FIRMA-R", False, 1, None),
    ]
    assert successful_payments(live, order_id) == 1
    one_mail_for_order(live, new_customer, state.number)


def test_twin_procedi_posts_charge_once(page: Page, live, new_customer, login) -> None:
    order_id = customer_at_portal(page, login, new_customer)
    results = page.evaluate(TWIN_SUBMIT, "#card-picker")
    assert all(status in (200, 422) for status, _ in results), results

    state = order_state(live, order_id)
    assert at_the_bank(live, order_id).charged() == [state.total_cents]
    assert state.status == "paid"
    assert state.services == [
        ServiceRow("SPID-PF", True, 1, "4242"),
        ServiceRow("FIRMA-R", False, 1, None),
    ]
    assert successful_payments(live, order_id) == 1
    one_mail_for_order(live, new_customer, state.number)
    page.goto(f"/ordini/{order_id}")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
