"""Keyboard, focus, announcements, boosted navigation and waiting feedback in the browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from tests.e2e.helpers import (
    ORDER_URL,
    add_to_cart,
    choose_card_method,
    confirm_order,
    htmx_idle,
    mark_document,
    same_document,
)

FOCUSED_TAG = "() => document.activeElement && document.activeElement.tagName"


def test_skip_link_is_the_first_stop_and_jumps_to_main(page: Page) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Vai al contenuto")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_add_to_cart_keeps_focus_and_announces(page: Page, login, new_customer) -> None:
    login(page, new_customer)
    page.goto("/")
    htmx_idle(page)
    card = page.locator("#product-pec-std")
    card.get_by_role("button", name="Aggiungi al carrello").focus()
    page.keyboard.press("Enter")
    expect(card.get_by_role("status")).to_contain_text("Aggiunto al carrello")
    expect(card.get_by_role("link", name="Vai al carrello")).to_be_focused()
    assert page.evaluate(FOCUSED_TAG) != "BODY"
    expect(page.locator("#cart-badge")).to_have_text("1")

    # Checkout: a change of method or frequency is announced with the new total.
    page.goto("/checkout")
    choose_card_method(page)
    expect(page.locator("#announcer")).to_contain_text("Totale aggiornato:")
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")

    # "Frequenza di rinnovo" with the keyboard alone: the select keeps the focus across swaps.
    select = page.get_by_label("Frequenza di rinnovo per PEC Standard", exact=True)
    select.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("[data-renewal=on]")).to_contain_text("ogni 2 anni")
    expect(select).to_be_focused()
    expect(announcer).to_contain_text(re.compile(r"Totale aggiornato: € 12,20"))
    htmx_idle(page)
    page.keyboard.press("ArrowDown")
    expect(page.locator("[data-renewal=on]")).to_contain_text("ogni 3 anni")
    expect(select).to_be_focused()
    expect(select.locator("option:checked")).to_have_text("3 anni · € 15,00 + IVA")

    # Removing a line from the cart is announced too.
    page.goto("/carrello")
    htmx_idle(page)
    page.get_by_role("button", name="Rimuovi").click()
    expect(page.locator("#announcer")).to_have_text("Il carrello è vuoto.")


def test_boosted_navigation_catalogue_to_order_with_back_and_forward(
    page: Page, login, new_customer
) -> None:
    login(page, new_customer)
    page.goto("/")
    htmx_idle(page)
    mark_document(page)
    add_to_cart(page, "PEC-STD")

    page.get_by_role("link", name="Vai al carrello").first.click()
    expect(page).to_have_url(re.compile(r"/carrello$"))
    expect(page).to_have_title("Carrello · PEC Shop")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    page.get_by_role("link", name="Procedi all'ordine").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    expect(page).to_have_title("Completa l'ordine · PEC Shop")
    expect(page.get_by_role("heading", level=1, name="Completa l'ordine")).to_be_focused()
    assert same_document(page), "the boosted links swapped the page, no full load"

    # Back and forward through the boosted entries: each restores its page and title.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/carrello$"))
    expect(page.get_by_role("heading", name="Carrello")).to_be_visible()
    expect(page).to_have_title("Carrello · PEC Shop")
    page.go_back()
    expect(page.get_by_role("heading", name="PEC e Servizi Certificati")).to_be_visible()
    expect(page).to_have_title("Catalogo · PEC Shop")
    page.go_forward()
    expect(page).to_have_url(re.compile(r"/carrello$"))
    page.go_forward()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    expect(page).to_have_title("Completa l'ordine · PEC Shop")

    choose_card_method(page)
    order_id = confirm_order(page)
    expect(page).to_have_title(re.compile(r"^Ordine \d"))
    # Back from the order: the checkout of an emptied cart sends to the catalogue.
    page.go_back()
    expect(page.get_by_role("heading", name="PEC e Servizi Certificati")).to_be_visible()

    # A reload is a whole page, and the area's link swaps in the whole area page.
    page.goto(f"/ordini/{order_id}")
    page.reload()
    expect(page).to_have_url(ORDER_URL)
    expect(page.get_by_role("heading", name=re.compile(r"^Ordine n\."))).to_be_visible()
    mark_document(page)
    page.get_by_role("link", name="Area clienti").click()
    expect(page.get_by_role("heading", name="I miei servizi")).to_be_visible()
    expect(page).to_have_title("I miei servizi · PEC Shop")
    assert same_document(page)
    # The footer links are boosted too, and an unknown page shows the shop's 404 page.
    page.get_by_role("link", name="Privacy").click()
    expect(page).to_have_title("Informativa sulla privacy · PEC Shop")


def test_paga_ora_shows_a_spinner_and_disables_the_button(page: Page, login, new_customer) -> None:
    login(page, new_customer)
    page.goto("/")
    add_to_cart(page, "SPID-PF")
    page.goto("/checkout")
    choose_card_method(page)
    confirm_order(page)
    htmx_idle(page)

    held: list[Route] = []
    page.route(re.compile(r"/ordini/\d+/paga$"), lambda route: held.append(route))
    button = page.get_by_role("button", name="Paga ora su server sicuro")
    button.click()
    expect(button).to_be_disabled()
    expect(page.get_by_text("Attendere: ti colleghiamo alla banca…")).to_be_visible()
    assert held, "the click did post"
    held[0].continue_()
    expect(page.get_by_role("heading", name="Inserisci i dati della carta")).to_be_visible()


def test_add_card_plain_form_waits_and_goes_to_the_bank(page: Page, login, new_customer) -> None:
    login(page, new_customer)
    page.goto("/area-clienti/carte")
    htmx_idle(page)
    button = page.get_by_role("button", name="Aggiungi una carta")
    # Hold the navigation in the page (a held route would block Playwright too): app.js has seen
    # the submit before this listener, on window, cancels it.
    page.evaluate("window.addEventListener('submit', (e) => e.preventDefault(), {once: true})")
    button.click()
    expect(button).to_be_disabled()
    expect(page.get_by_text("Attendere: ti colleghiamo alla banca…")).to_be_visible()
    expect(page.locator("form[data-wait]")).to_have_attribute("aria-busy", "true")

    page.reload()
    requests: list[dict] = []
    page.on("request", lambda r: requests.append(r.headers) if "/carte/nuova" in r.url else None)
    page.get_by_role("button", name="Aggiungi una carta").click()
    expect(page.get_by_role("heading", name="Inserisci i dati della carta")).to_be_visible()
    assert requests and "hx-request" not in requests[0], "a plain navigation, not boosted"
