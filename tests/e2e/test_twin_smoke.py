"""The twin smoke of `make qa`: the saved-card "Procedi" fired at the same instant, one charge.

The twin harness of tests/reliability (`fire`: threads released together by a barrier) sends
the portal's form as this customer's browser would, from TWINS windows sharing its cookies,
against whatever the suite runs on (a deployment, or the servers `make test` starts); the
bank's sandbox then shows one charge for the order.
"""

from __future__ import annotations

import requests
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    ORDER_URL,
    at_the_bank,
    buy_by_card,
    choose_on_portal,
    one_mail_for_order,
    open_portal,
    order_state,
    pay_first_card,
)
from tests.reliability.twins import TWINS, assert_no_5xx, fire, post

PORTAL_FORM = """() => {
  const form = document.querySelector('#card-picker');
  return [form.action, Object.fromEntries(new FormData(form))];
}"""


def test_saved_card_procedi_fired_at_once_charges_once(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")
    order_id = buy_by_card(page, "SPID-PF", "FIRMA-R")
    open_portal(page)
    choose_on_portal(page, "Visa •••• 4242")
    action, form = page.evaluate(PORTAL_FORM)
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies(live.shop_url))
    headers = {"Cookie": cookie, "X-CSRFToken": form["csrf_token"]}

    answers = fire([(requests.Session, post(action, form, headers))] * TWINS)

    assert_no_5xx(answers)
    assert all(a.status in (200, 303, 422) for a in answers), [a.status for a in answers]
    state = order_state(live, order_id)
    assert state.status == "paid"
    assert [status for _, status in state.payments].count("succeeded") == 1, state.payments
    assert at_the_bank(live, order_id).charged() == [state.total_cents]
    one_mail_for_order(live, new_customer, state.number)
    page.goto(f"/ordini/{order_id}")
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
