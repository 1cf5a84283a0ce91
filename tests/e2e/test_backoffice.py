"""Issue 11: the operators' back office. An operator logs in with password + TOTP, records a
bank transfer, refunds a card payment; a customer withdraws from an order within 14 days."""

from __future__ import annotations

import uuid
from datetime import date

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import (
    add_to_cart,
    at_the_bank,
    buy_by_card,
    confirm_order,
    customer_services,
    one_mail_for_order,
    order_state,
    pay_first_card,
)


def staff_login(browser: Browser, live) -> Page:
    """A fresh operator (the sandbox makes one per test) logs in from a browser of its own (no
    customer cookie): password, then the code of the authenticator enrolled at the first login."""
    staff = live.sandbox.staff("operatore")
    page = browser.new_context(base_url=live.shop_url, locale="it-IT").new_page()
    page.goto("/backoffice/")
    expect(page.get_by_role("heading", name="Accesso staff")).to_be_visible()
    page.get_by_label("E-mail").fill(staff["email"])
    page.get_by_label("Password").fill(staff["password"])
    page.get_by_role("button", name="Continua").click()
    expect(page.get_by_role("heading", name="Codice di verifica")).to_be_visible()
    expect(page.get_by_role("img", name="Codice QR per l'app di autenticazione")).to_have_count(0)
    page.get_by_label("Codice a 6 cifre").fill(pyotp.TOTP(staff["totp_secret"]).now())
    page.get_by_role("button", name="Accedi").click()
    expect(page.get_by_role("heading", name="Cruscotto")).to_be_visible()
    return page


def open_order(staff: Page, number: str) -> None:
    """Cerca → the order number → its page."""
    staff.locator("#bo-nav").get_by_role("link", name="Cerca").click()
    staff.get_by_label("Numero, nome, e-mail").fill(number)
    staff.get_by_role("button", name="Cerca").click()
    staff.locator("#results-ordini").get_by_role("link", name=number).click()
    expect(staff.get_by_role("heading", name=f"Ordine n. {number}")).to_be_visible()


def test_operator_records_a_bank_transfer(page: Page, browser: Browser, live, new_customer, login):
    login(page, new_customer)
    page.goto("/")
    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    page.get_by_label("Bonifico bancario").check()
    expect(page.locator("#checkout-items")).not_to_contain_text("Rinnovo automatico attivo")
    order_id = confirm_order(page)
    expect(page.get_by_role("heading", name="Pagamento con bonifico bancario")).to_be_visible()
    number = order_state(live, order_id).number

    staff = staff_login(browser, live)
    open_order(staff, number)
    form = staff.locator("#transfer-form")
    form.get_by_label("Importo (€)").fill("5,00")
    form.get_by_label("Data valuta").fill(date.today().isoformat())
    form.get_by_label("CRO/TRN").fill(f"CRO{uuid.uuid4().hex[:10].upper()}")
    form.get_by_role("button", name="Registra bonifico").click()
    expect(staff.locator("#order-file [role=alert]")).to_contain_text(
        "Importo del bonifico € 5,00 diverso dal totale dell'ordine € 6,10"
    )
    form = staff.locator("#transfer-form")
    form.get_by_label("Importo (€)").fill("6,10")
    form.get_by_label("Data valuta").fill(date.today().isoformat())
    form.get_by_label("CRO/TRN").fill(f"CRO{uuid.uuid4().hex[:10].upper()}")
    form.get_by_role("button", name="Registra bonifico").click()
    expect(staff.locator("#bo-order-status")).to_have_attribute("data-status", "paid")
    expect(staff.locator("#timeline")).to_contain_text("bonifico registrato")

    state = order_state(live, order_id)
    assert state.status == "paid"
    assert state.payments == [("bank_transfer", "succeeded")]
    assert [(s.sku, s.auto_renew) for s in state.services] == [("PEC-STD", False)]
    one_mail_for_order(live, new_customer, number)
    page.goto(f"/ordini/{order_id}")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    expect(page.locator("#order-services")).to_contain_text("PEC Standard: attivo fino al")


def test_operator_refunds_a_card_payment(page: Page, browser: Browser, live, new_customer, login):
    login(page, new_customer)
    buy_by_card(page, "PEC-PRO")
    order_id = pay_first_card(page)
    number = order_state(live, order_id).number

    staff = staff_login(browser, live)
    open_order(staff, number)
    refund = staff.locator("form.refund-form").first
    refund.get_by_label("Importo da rimborsare (€)").fill("10,00")
    refund.get_by_label("Motivo del rimborso").fill("Reclamo del cliente")
    refund.get_by_role("button", name="Rimborsa").click()
    expect(staff.locator("#order-file [role=status]")).to_contain_text(
        "Rimborso di € 10,00 eseguito"
    )
    expect(staff.locator("#timeline")).to_contain_text("rimborso richiesto")

    [payment] = order_state(live, order_id).raw["payments"]
    assert payment["refunded_cents"] == 1000
    bank = at_the_bank(live, order_id)
    [captured] = [p for p in bank.payments if p["id"] == payment["gateway_ref"]]
    assert captured["refunded_cents"] == 1000, bank
    assert [(r["target"], r["amount_cents"]) for r in bank.refunds] == [(captured["id"], 1000)]


def test_customer_withdraws_within_14_days(page: Page, live, new_customer, login):
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    order_id = pay_first_card(page)
    page.goto("/area-clienti/ordini")
    page.locator(f"#order-{order_id}").get_by_role("link", name="Recesso").click()
    expect(page.locator("#withdrawal")).to_contain_text("Puoi recedere da questo ordine entro il")
    page.get_by_role("button", name="Esercita il diritto di recesso").click()
    expect(page.locator("#flash")).to_contain_text("Recesso registrato")

    state = order_state(live, order_id)
    assert [(s.sku, s.auto_renew) for s in state.services] == [("PEC-STD", False)]
    [payment] = state.raw["payments"]
    refunds = [(r["kind"], r["payment_id"], r["amount_cents"]) for r in state.raw["refunds"]]
    assert refunds == [("withdrawal", payment["id"], payment["amount_cents"])]
    assert [s.status for s in customer_services(live, new_customer).values()] == ["cancelled"]
    page.goto(f"/area-clienti/ordini/{order_id}/recesso")
    expect(page.locator("#withdrawal-refused")).to_contain_text("già stato rimborsato")
