"""Issue 26: a first checkout's billing step shows only what the chosen type needs, comes
pre-filled from the registration, and "Conferma e completa l'ordine" saves what was filled in;
an error goes away once fixed."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.deployment import TAX_CODE
from tests.e2e.helpers import ORDER_URL, add_to_cart, choose_card_method


def test_a_first_checkout_asks_only_what_a_person_needs(
    page: Page, live, make_customer, login
) -> None:
    customer = make_customer("Lucia Verdi", billing=False)
    login(page, customer)
    page.goto("/")
    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    choose_card_method(page)
    billing = page.locator("#checkout-billing")
    # Pre-filled from the registration: a person (codice fiscale), name and surname.
    expect(billing.get_by_label("Privato")).to_be_checked()
    expect(billing.get_by_label("Nome", exact=True)).to_have_value("Lucia")
    expect(billing.get_by_label("Cognome")).to_have_value("Verdi")
    expect(billing.get_by_label("Codice fiscale")).to_have_value(TAX_CODE)
    # Only what a person needs: no company, partita IVA, SdI code or PEC.
    for hidden in ("Partita IVA", "Denominazione o ragione sociale", "CIG (facoltativo)"):
        expect(billing.get_by_label(hidden)).to_be_hidden()
    billing.get_by_label("Azienda o professionista").check()
    expect(billing.get_by_label("Partita IVA")).to_be_visible()
    expect(billing.get_by_label("Cognome")).to_be_hidden()
    billing.get_by_label("Privato").check()

    # "Conferma" with the address missing: the field says why, nothing is confirmed.
    page.get_by_label("condizioni generali di contratto").check()
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(billing.locator("[data-field=postal_code]")).to_have_text("Inserisci il CAP.")
    expect(page.locator("#confirm-error")).to_contain_text("Inserisci i dati di fatturazione")

    # Filled in but not saved: "Conferma" saves them and places the order.
    billing.get_by_label("Indirizzo (via e numero civico)").fill("Via Dante 3")
    billing.get_by_label("CAP").fill("20121")
    billing.get_by_label("Comune", exact=True).fill("Milano")
    billing.get_by_label("Provincia (sigla)").fill("MI")
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(page).to_have_url(ORDER_URL)
    page.goto("/area-clienti/fatturazione")
    expect(page.get_by_label("Indirizzo (via e numero civico)")).to_have_value("Via Dante 3")


def test_saving_the_billing_clears_the_confirm_error(page: Page, live, make_customer, login):
    login(page, make_customer("Paolo Neri", billing=False))
    page.goto("/")
    add_to_cart(page, "SPID-PF")
    page.goto("/checkout")
    choose_card_method(page)
    billing = page.locator("#checkout-billing")
    billing.get_by_label("Indirizzo (via e numero civico)").fill("Via Po 1")
    billing.get_by_label("CAP").fill("10121")
    billing.get_by_label("Comune", exact=True).fill("Torino")
    billing.get_by_label("Provincia (sigla)").fill("XX")  # wrong: the confirm says so
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(page.locator("#confirm-error")).to_contain_text("Inserisci i dati di fatturazione")
    billing.get_by_label("Provincia (sigla)").fill("TO")
    billing.get_by_role("button", name="Salva i dati di fatturazione").click()
    expect(billing.get_by_role("button", name="Salva i dati di fatturazione")).to_have_count(0)
    expect(page.locator("#confirm-error")).to_be_empty()
