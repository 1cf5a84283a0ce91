"""Issue 5: the Rinnovo automatico switch and the frequency in "I miei servizi"."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    buy_by_card,
    customer_services,
    day,
    mails_about,
    mails_to,
    mark_document,
    one_mail_about,
    open_my_services,
    pay_first_card,
    same_document,
    saved_cards,
    service_row,
)

PEC = "PEC Standard"
FIRMA = "Firma Digitale Remota"
OFF_MAIL = f"Rinnovo automatico disattivato: {PEC}"
ON_MAIL = f"Rinnovo automatico attivato: {PEC}"
WINDOW = timedelta(days=15)  # RENEWAL_WINDOW_DAYS: the card is charged 15 days before expiry


def test_switch_off_and_on_mails_each_change_and_frequency_changes_in_place(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD", "FIRMA-R")
    pay_first_card(page, "4242424242424242")
    pec = customer_services(live, new_customer)["PEC-STD"]
    [(card_id, _, _)] = saved_cards(live, new_customer)
    expiry, renew_on = day(pec.expires_at), day(pec.expires_at - WINDOW)

    open_my_services(page)
    row = service_row(page, PEC)
    switch = row.get_by_role("switch", name="Rinnovo automatico")
    card = row.get_by_label("Carta per il rinnovo")
    summary = row.locator(f"#service-{pec.id}-summary")
    expect(row.locator(f"#service-{pec.id}-expiry")).to_have_text(expiry)
    expect(row.locator(f"#service-{pec.id}-status")).to_have_text("Attivo")
    expect(switch).to_be_checked()
    expect(row.locator(f"#auto-renew-state-{pec.id}")).to_have_text("Attivo")
    expect(card).to_have_value(str(card_id))
    expect(card.locator("option:checked")).to_contain_text("Visa •••• 4242")
    expect(summary).to_contain_text(
        f"Il {renew_on} addebiteremo € 6,10 (IVA inclusa) per 1 anno sulla carta Visa •••• 4242."
    )
    firma = service_row(page, FIRMA)
    expect(firma).to_contain_text("Il rinnovo automatico non è disponibile per Firma Digitale.")
    expect(firma.get_by_role("switch")).to_have_count(0)
    expect(firma.get_by_label("Frequenza di rinnovo")).to_have_count(0)

    # Off: the row changes in place, and one e-mail says so.
    mark_document(page)
    switch.click()
    expect(row).to_have_attribute("data-auto-renew", "off")
    expect(switch).not_to_be_checked()
    expect(row.locator(f"#auto-renew-state-{pec.id}")).to_have_text("Disattivato")
    expect(row.get_by_role("status")).to_have_text(
        "Rinnovo automatico disattivato. Ti abbiamo inviato una e-mail di conferma."
    )
    expect(summary).to_contain_text(
        f"Il rinnovo automatico è disattivato: il servizio scadrà il {expiry}."
    )
    assert same_document(page)
    text = one_mail_about(live, new_customer, OFF_MAIL).text
    assert (
        f"hai disattivato il Rinnovo automatico di {PEC}: non addebiteremo nulla "
        f"e il servizio scadrà il {expiry}." in text
    )
    assert f"{live.shop_url}/area-clienti" in text
    assert mails_about(live, new_customer, ON_MAIL) == []
    assert customer_services(live, new_customer)["PEC-STD"].auto_renew is False

    # Persisted: a reload shows it off.
    page.reload()
    expect(row).to_have_attribute("data-auto-renew", "off")
    expect(switch).not_to_be_checked()
    expect(row.get_by_role("status")).to_have_count(0)

    # On again: a second e-mail, on the same card.
    mark_document(page)
    switch.click()
    expect(row).to_have_attribute("data-auto-renew", "on")
    expect(switch).to_be_checked()
    expect(row.get_by_role("status")).to_have_text(
        "Rinnovo automatico attivato. Ti abbiamo inviato una e-mail di conferma."
    )
    expect(summary).to_contain_text(f"Il {renew_on} addebiteremo € 6,10 (IVA inclusa) per 1 anno")
    text = one_mail_about(live, new_customer, ON_MAIL).text
    assert f"hai attivato il Rinnovo automatico di {PEC}." in text
    assert (
        f"Il {renew_on} addebiteremo € 6,10 (IVA inclusa) per 1 anno sulla carta Visa •••• 4242; "
        f"il servizio oggi scade il {expiry}." in text
    )
    assert len(mails_about(live, new_customer, OFF_MAIL)) == 1

    # Frequency: 3 years, priced at the list price, shown in place and kept.
    frequency = row.get_by_label("Frequenza di rinnovo")
    frequency.select_option("3")
    expect(row.get_by_role("status")).to_have_text(
        "Frequenza di rinnovo aggiornata: ogni 3 anni, € 18,30 IVA inclusa."
    )
    expect(summary).to_contain_text(f"Il {renew_on} addebiteremo € 18,30 (IVA inclusa) per 3 anni")
    expect(frequency).to_have_value("3")
    assert same_document(page)
    page.reload()
    expect(frequency).to_have_value("3")
    expect(switch).to_be_checked()
    pec_now = customer_services(live, new_customer)["PEC-STD"]
    assert (pec_now.auto_renew, pec_now.frequency_years, pec_now.card_last4) == (True, 3, "4242")
    assert pec_now.expires_at == pec.expires_at
    # The order confirmation, one "disattivato" and one "attivato": nothing for the frequency.
    assert len(mails_to(live, new_customer)) == 3


def test_turning_on_without_a_valid_card_says_how_to_add_one(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")
    pec = customer_services(live, new_customer)["PEC-STD"]
    open_my_services(page)
    row = service_row(page, PEC)
    switch = row.get_by_role("switch", name="Rinnovo automatico")
    switch.click()
    expect(row).to_have_attribute("data-auto-renew", "off")
    one_mail_about(live, new_customer, OFF_MAIL)

    # Auto-renewal off: its only card can go.
    page.locator("#area-nav").get_by_role("link", name="Carte di pagamento").click()
    page.get_by_role("button", name="Rimuovi la carta Visa •••• 4242").click()
    expect(page.locator("#card-list-message")).to_have_text("Carta Visa •••• 4242 rimossa.")
    expect(page.locator("#no-cards")).to_have_text("Non hai carte salvate.")
    assert saved_cards(live, new_customer) == []

    page.locator("#area-nav").get_by_role("link", name="I miei servizi").click()
    expect(row.locator(f"#card-{pec.id}")).to_have_text("Nessuna carta valida. Aggiungi una carta")
    mark_document(page)
    switch.click()
    error = row.get_by_role("alert")
    expect(error).to_have_text(
        "Per attivare il rinnovo automatico serve una carta di pagamento valida: "
        "aggiungine una nella pagina Carte di pagamento. Aggiungi una carta"
    )
    expect(row).to_have_attribute("data-auto-renew", "off")
    expect(switch).not_to_be_checked()
    assert same_document(page)
    assert customer_services(live, new_customer)["PEC-STD"].auto_renew is False
    assert mails_about(live, new_customer, ON_MAIL) == []

    # The message's link leads to where a card is added.
    error.get_by_role("link", name="Aggiungi una carta").click()
    expect(page).to_have_url(re.compile(r"/area-clienti/carte#add-card$"))
    add = page.locator("#add-card").get_by_role("button", name="Aggiungi una carta")
    expect(add).to_be_visible()
