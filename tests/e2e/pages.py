"""Every page of the three payment paths, the bank's pages and the customer area, in order.

`visit_every_page` walks a fresh customer through path 1 (SMS OTP card), path 2 (saved card on
the portal) and path 3 (a new card approved in the bank's app), then the customer area and the
legal pages, and calls `check(page, name)` on each page it reaches: the accessibility and the
phone-width tests, and scripts/screenshots.py, share it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    BANK_CARD_URL,
    ORDER_URL,
    add_to_cart,
    bank_payment_id,
    choose_card_method,
    choose_on_portal,
    click_pay_now,
    confirm_order,
    open_portal,
    set_years,
)

Check = Callable[[Page, str], None]
OTP_CARD = "4111111111111111"
APP_CARD = "5555555555554444"


def _card_form(page: Page, check: Check, number: str, step: str) -> str:
    """The bank's card page → summary ("Invio dati"); returns the bank's payment id."""
    expect(page).to_have_url(BANK_CARD_URL)
    expect(page.get_by_role("heading", name="Inserisci i dati della carta")).to_be_visible()
    payment_id = bank_payment_id(page)
    check(page, f"{step}-banca-dati-carta")
    page.get_by_label("Intestatario della carta").fill("Mario Rossi")
    page.get_by_label("Numero carta").fill(number)
    page.get_by_label("Mese di scadenza").select_option("12")
    page.get_by_label("Anno di scadenza").select_option(str(time.gmtime().tm_year + 3))
    page.get_by_label("CVV").fill("123")
    page.get_by_role("button", name="Procedi").click()
    expect(page.get_by_role("heading", name="Riepilogo dei dati inseriti")).to_be_visible()
    check(page, f"{step}-banca-riepilogo")
    page.get_by_role("button", name="Invio dati").click()
    return payment_id


def _back_to_shop(page: Page, check: Check, step: str) -> None:
    expect(page.locator("#payment-result h1")).to_have_text("Pagamento autorizzato")
    check(page, f"{step}-banca-esito")
    page.get_by_role("link", name="torna al negozio").click()
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    check(page, f"{step}-ordine-pagato")


def visit_every_page(page: Page, bank_url: str, login: Callable, customer, check: Check) -> None:
    """Walk the three payment paths and the customer area, checking each page on the way."""
    page.goto("/accedi")
    check(page, "0-accedi")
    page.goto("/registrati")
    check(page, "0-registrati")
    page.goto("/password-dimenticata")
    check(page, "0-password-dimenticata")
    login(page, customer)

    # Path 1: the first card, with the SMS OTP challenge.
    page.goto("/")
    check(page, "1-catalogo")
    add_to_cart(page, "PEC-STD", "FIRMA-R")
    page.goto("/carrello")
    check(page, "1-carrello")
    page.goto("/checkout")
    choose_card_method(page)
    set_years(page, "PEC Standard", 3)
    check(page, "1-checkout")
    confirm_order(page)
    check(page, "1-ordine")
    click_pay_now(page)
    _card_form(page, check, OTP_CARD, "1")
    expect(page.get_by_role("heading", name="Autenticazione 3-D Secure")).to_be_visible()
    check(page, "1-banca-otp")
    page.get_by_label("Codice OTP").fill(page.locator("#otp-code").inner_text())
    page.get_by_role("button", name="Conferma").click()
    _back_to_shop(page, check, "1")

    # Path 2: a saved card on the payment portal.
    page.goto("/")
    add_to_cart(page, "SPID-PF")
    page.goto("/checkout")
    choose_card_method(page)
    confirm_order(page)
    open_portal(page)
    choose_on_portal(page, "•••• 1111")
    check(page, "2-portale")
    page.get_by_role("button", name="Procedi").click()
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    check(page, "2-ordine-pagato")

    # Path 3: "Nuova carta di pagamento", approved in the bank's app.
    page.goto("/")
    add_to_cart(page, "CONS-1")
    page.goto("/checkout")
    choose_card_method(page)
    confirm_order(page)
    open_portal(page)
    choose_on_portal(page, "Nuova carta di pagamento")
    check(page, "3-portale-nuova-carta")
    page.get_by_role("button", name="Procedi").click()
    payment_id = _card_form(page, check, APP_CARD, "3")
    expect(page.get_by_role("heading", name="Apri l'app della tua banca")).to_be_visible()
    check(page, "3-banca-attesa-app")
    phone = page.context.new_page()
    phone.goto(f"{bank_url}/app/{payment_id}")
    expect(phone.get_by_role("button", name="Approva")).to_be_visible()
    check(phone, "3-banca-app")
    phone.get_by_role("button", name="Approva").click()
    expect(phone.locator("#app-outcome")).to_contain_text("Hai approvato")
    phone.close()
    _back_to_shop(page, check, "3")

    # The customer area.
    page.goto("/area-clienti")
    expect(page.get_by_role("heading", name="I miei servizi")).to_be_visible()
    check(page, "4-area-servizi")
    page.goto("/area-clienti/carte")
    check(page, "4-area-carte")
    page.goto("/area-clienti/ordini")
    check(page, "4-area-ordini")
    page.locator("#orders").get_by_role("link", name="Ricevuta").first.click()
    expect(page.locator("#receipt")).to_be_visible()
    check(page, "4-area-ricevuta")
    page.goto("/area-clienti/profilo/")
    check(page, "4-area-profilo")
    for path, name in (("/privacy", "5-privacy"), ("/cookie", "5-cookie"), ("/sconti", "5-sconti")):
        page.goto(path)
        check(page, name)
    page.goto(f"{bank_url}/")
    check(page, "5-banca-sandbox")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower())
