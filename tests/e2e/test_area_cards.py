"""Issue 5: saved cards and orders in the customer area."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    add_card_in_area,
    buy_by_card,
    customer_services,
    htmx_idle,
    order_state,
    pay_first_card,
    saved_cards,
    service_row,
)

PEC = "PEC Standard"
OTHER_VISA = "4012888888881881"  # any other Luhn-valid number: frictionless


def go_to(page: Page, tab: str) -> None:
    """A tab of the customer area's navigation."""
    page.locator("#area-nav").get_by_role("link", name=tab).click()
    expect(page.locator("#area-nav").get_by_role("link", name=tab)).to_have_attribute(
        "aria-current", "page"
    )
    htmx_idle(page)  # the new page's controls listen only once htmx has settled the swap


def test_a_card_renewing_a_service_is_removed_only_after_switching(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    paid_id = buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")
    add_card_in_area(page, OTHER_VISA)
    ids = {last4: card_id for card_id, _, last4 in saved_cards(live, new_customer)}
    expiry = f"12/{time.gmtime().tm_year + 3}"

    # The list: newest first, with expiry, holder and what each card renews.
    rows = page.locator("#card-list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-last4", "1881")
    first = page.locator(f"#saved-card-{ids['4242']}")
    second = page.locator(f"#saved-card-{ids['1881']}")
    expect(first.locator("td")).to_have_text(
        ["Visa •••• 4242", expiry, "Mario Rossi", PEC, "Rimuovi"]
    )
    expect(second.locator("td")).to_have_text(
        ["Visa •••• 1881", expiry, "Mario Rossi", "—", "Rimuovi"]
    )

    # In use by an auto-renewing service: refused, with what to do instead.
    page.get_by_role("button", name="Rimuovi la carta Visa •••• 4242").click()
    expect(page.locator("#card-list-error")).to_have_text(
        f"La carta Visa •••• 4242 è usata per il rinnovo automatico di {PEC}: scegli un'altra "
        "carta per il servizio o disattiva il rinnovo automatico, poi rimuovila."
    )
    expect(rows).to_have_count(2)
    assert len(saved_cards(live, new_customer)) == 2

    # The service switches to the other card; then the first one can go.
    go_to(page, "I miei servizi")
    row = service_row(page, PEC)
    row.get_by_label("Carta per il rinnovo").select_option(str(ids["1881"]))
    expect(row.get_by_role("status")).to_have_text(
        "I prossimi rinnovi useranno la carta Visa •••• 1881."
    )
    go_to(page, "Carte di pagamento")
    expect(second.locator("td").nth(3)).to_have_text(PEC)
    expect(first.locator("td").nth(3)).to_have_text("—")
    page.get_by_role("button", name="Rimuovi la carta Visa •••• 4242").click()
    expect(page.locator("#card-list-message")).to_have_text("Carta Visa •••• 4242 rimossa.")
    expect(rows).to_have_count(1)
    expect(first).to_have_count(0)
    assert [c[2] for c in saved_cards(live, new_customer)] == ["1881"]

    # The last card renews the service: refused until auto-renewal is off.
    page.get_by_role("button", name="Rimuovi la carta Visa •••• 1881").click()
    expect(page.locator("#card-list-error")).to_contain_text("è usata per il rinnovo automatico")
    go_to(page, "I miei servizi")
    row.get_by_role("switch", name="Rinnovo automatico").click()
    expect(row).to_have_attribute("data-auto-renew", "off")
    go_to(page, "Carte di pagamento")
    page.get_by_role("button", name="Rimuovi la carta Visa •••• 1881").click()
    expect(page.locator("#card-list-message")).to_have_text("Carta Visa •••• 1881 rimossa.")
    expect(page.locator("#no-cards")).to_have_text("Non hai carte salvate.")
    assert saved_cards(live, new_customer) == []
    pec = customer_services(live, new_customer)["PEC-STD"]
    assert (pec.auto_renew, pec.card_last4) == (False, None)

    # Orders: the paid one with its receipt, an unpaid one to pay.
    unpaid_id = buy_by_card(page, "SPID-PF")
    page.get_by_role("link", name="Area clienti").click()
    go_to(page, "Ordini e ricevute")
    expect(page.locator("#orders tbody tr")).to_have_count(2)
    paid, unpaid = order_state(live, paid_id), order_state(live, unpaid_id)
    paid_row, unpaid_row = page.locator(f"#order-{paid_id}"), page.locator(f"#order-{unpaid_id}")
    expect(page.locator("#orders tbody tr").nth(0)).to_have_id(f"order-{unpaid_id}")
    for cell in (paid.number, "Acquisto", "PEC Standard (1 anno)", "Pagato", "€ 6,10"):
        expect(paid_row).to_contain_text(cell)
    for cell in (unpaid.number, "SPID Persona Fisica (1 anno)", "In attesa", "€ 12,08"):
        expect(unpaid_row).to_contain_text(cell)
    expect(unpaid_row.get_by_role("link", name="Paga")).to_have_attribute(
        "href", f"/ordini/{unpaid_id}"
    )
    paid_row.get_by_role("link", name="Ricevuta").click()
    expect(page).to_have_url(re.compile(rf"/area-clienti/ordini/{paid_id}$"))
    expect(page.locator("#receipt").get_by_role("heading")).to_have_text(
        f"Ricevuta dell'ordine n. {paid.number}"
    )
    expect(page.locator("#receipt-total")).to_have_text("€ 6,10")
    expect(page.locator("#receipt-payment")).to_contain_text("Pagamento con carta")
