"""Issue 5: the renewal pass, driven by the sandbox's test clock, seen in the customer area.

Time goes by for this test's customer alone (the test clock moves their services' dates), then
a pass runs as of now through the scheduler's code: other tests' customers on the same
deployment are not touched, so the assertions are about this customer's orders, e-mails and
movements at the bank.
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    add_card_in_area,
    at_the_bank,
    buy_by_card,
    customer_services,
    day,
    days_pass_for,
    days_until,
    mails_about,
    one_mail_about,
    open_my_services,
    order_state,
    pay_first_card,
    renewal_orders,
    renewal_pass,
    saved_cards,
    service_row,
    verify_card,
)
from webapp.clock import add_years, rome_date, rome_midnight

PEC = "PEC Standard"
FRICTIONLESS_CARD = "4242424242424242"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
WINDOW = timedelta(days=15)  # RENEWAL_WINDOW_DAYS
RETRY_DAYS = (10, 5, 1)  # RENEWAL_RETRY_DAYS: retries this many days before expiry


def test_renewal_pass_extends_the_service_and_sends_the_receipt(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    # PEC Standard 5,00 + Firma 39,90 = 44,90; BENVENUTO10 − 4,49 = 40,41; IVA 8,89.
    order_id = buy_by_card(page, "PEC-STD", "FIRMA-R", discount="BENVENUTO10")
    pay_first_card(page, FRICTIONLESS_CARD)
    purchase = order_state(live, order_id)
    assert (purchase.status, purchase.total_cents) == ("paid", 4930)
    pec = customer_services(live, new_customer)["PEC-STD"]
    assert (pec.auto_renew, pec.frequency_years, pec.card_last4) == (True, 1, "4242")

    # A year goes by, less 10 days: the service expires in 10 days and is in its window.
    clock = days_pass_for(live, new_customer, days_until(pec.expires_at, 10))
    old = clock.moved["PEC-STD"].expires_at
    new, as_of = add_years(old, 1), rome_date(clock.as_of)
    assert rome_date(old) - as_of == timedelta(days=10)

    # The list price for one year plus VAT: the first order's discount is not carried over.
    [(renewal_id, renewal)] = renewal_orders(live, new_customer).items()
    assert (renewal.status, renewal.total_cents) == ("paid", 610)
    assert renewal.payments == [("renewal", "succeeded")]
    # At the bank: one merchant-initiated charge for the renewal, nothing more for the purchase.
    charged = at_the_bank(live, renewal_id)
    assert (charged.charged(), [c["initiator"] for c in charged.charges]) == ([610], ["merchant"])
    purchased = at_the_bank(live, order_id)
    assert (purchased.authorised(), purchased.charges) == ([4930], [])
    services = customer_services(live, new_customer)
    assert services["PEC-STD"].expires_at == new
    assert services["FIRMA-R"].expires_at == clock.moved["FIRMA-R"].expires_at  # not renewable

    subject = f"Rinnovo effettuato: {PEC} fino al {day(new)}"
    text = one_mail_about(live, new_customer, subject).text
    assert f"in scadenza il {day(old)}, ora scade il {day(new)}." in text
    assert f"Ricevuta del rinnovo n. {renewal.number} del {day(as_of)}" in text
    assert f"- {PEC}, 1 anno x € 5,00: € 5,00" in text
    for line in ("Imponibile: € 5,00", "IVA 22%: € 1,10", "Totale addebitato: € 6,10"):
        assert line in text.splitlines(), line
    assert "Carta: Visa •••• 4242" in text
    assert "BENVENUTO10" not in text and "Firma" not in text
    assert f"{live.shop_url}/area-clienti/ordini/{renewal_id}" in text

    # The customer area: the new expiry, then the renewal's receipt among the orders.
    open_my_services(page)
    row = service_row(page, PEC)
    expect(row.locator(f"#service-{pec.id}-expiry")).to_have_text(day(new))
    expect(row.locator(f"#service-{pec.id}-summary")).to_contain_text(
        f"Il {day(new - WINDOW)} addebiteremo € 6,10 (IVA inclusa) per 1 anno"
    )
    expect(row.get_by_role("alert")).to_have_count(0)
    page.locator("#area-nav").get_by_role("link", name="Ordini e ricevute").click()
    expect(page.locator("#orders tbody tr")).to_have_count(2)
    purchase_row = page.locator(f"#order-{order_id}")
    expect(purchase_row).to_contain_text("Acquisto")
    expect(purchase_row).to_contain_text("€ 49,30")
    renewal_row = page.locator("#orders tr[data-kind=renewal]")
    expect(renewal_row).to_have_count(1)
    cells = (renewal.number, day(as_of), "Rinnovo automatico", f"{PEC} (1 anno)", "Pagato")
    for cell in (*cells, "€ 6,10"):
        expect(renewal_row).to_contain_text(cell)
    renewal_row.get_by_role("link", name="Ricevuta").click()
    expect(page).to_have_url(re.compile(rf"/area-clienti/ordini/{renewal_id}$"))
    receipt = page.locator("#receipt")
    expect(receipt.get_by_role("heading")).to_have_text(
        f"Ricevuta del rinnovo automatico n. {renewal.number}"
    )
    expect(page.locator("#receipt-paid-at")).to_have_text(day(as_of))
    expect(page.locator("#receipt-renewal")).to_have_text(
        f"Rinnovo automatico di {PEC}: il servizio, in scadenza il {day(old)}, "
        f"ora scade il {day(new)}."
    )
    expect(page.locator("#receipt-total")).to_have_text("€ 6,10")
    expect(receipt).not_to_contain_text("Sconto")
    expect(page.locator("#receipt-payment")).to_contain_text(
        "Addebito automatico con carta Visa •••• 4242"
    )

    # A pass again (as the scheduler's next one): nothing is due, nothing charged or sent.
    renewal_pass(live)
    assert at_the_bank(live, renewal_id) == charged
    assert len(renewal_orders(live, new_customer)) == 1
    assert customer_services(live, new_customer)["PEC-STD"].expires_at == new
    assert len(mails_about(live, new_customer, "Rinnovo effettuato")) == 1


def test_failed_renewal_is_retried_at_once_with_a_new_card(
    page: Page, live, new_customer, login
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, FRICTIONLESS_CARD)
    # Saved with a zero-amount verification, then chosen for the service.
    add_card_in_area(page, INSUFFICIENT_FUNDS_CARD)
    cards = {last4: card_id for card_id, _, last4 in saved_cards(live, new_customer)}
    pec = customer_services(live, new_customer)["PEC-STD"]
    open_my_services(page)
    row = service_row(page, PEC)
    row.get_by_label("Carta per il rinnovo").select_option(str(cards["9995"]))
    expect(row.get_by_role("status")).to_have_text(
        "I prossimi rinnovi useranno la carta Visa •••• 9995."
    )
    assert customer_services(live, new_customer)["PEC-STD"].card_last4 == "9995"

    clock = days_pass_for(live, new_customer, days_until(pec.expires_at, 10))
    old = clock.moved["PEC-STD"].expires_at
    new, as_of, when = add_years(old, 1), rome_date(clock.as_of), clock.as_of
    # Retries fall on calendar days: the first retry day after the day of this pass.
    retry_days = (rome_midnight(rome_date(old) - timedelta(days=d)) for d in RETRY_DAYS)
    retry_on = min(p for p in retry_days if p > when)
    [(renewal_id, renewal)] = renewal_orders(live, new_customer).items()
    assert (renewal.status, renewal.total_cents) == ("pending_payment", 610)
    assert renewal.payments == [("renewal", "declined")]
    assert [c["status"] for c in at_the_bank(live, renewal_id).charges] == ["declined"]
    assert customer_services(live, new_customer)["PEC-STD"].expires_at == old

    # The e-mail says why and how to fix it, with the link to add a card.
    text = one_mail_about(live, new_customer, f"Rinnovo non riuscito: {PEC}").text
    assert (
        f"non siamo riusciti a rinnovare automaticamente {PEC} (in scadenza il {day(old)}): "
        "La carta non ha fondi sufficienti." in text
    )
    assert "Importo del rinnovo: € 6,10 IVA inclusa, carta Visa •••• 9995." in text
    assert (
        "Come risolvere: Verifica la disponibilità della carta oppure aggiungi un'altra "
        "carta nell'area clienti: la useremo subito per il rinnovo." in text
    )
    assert f"Aggiungi una carta: {live.shop_url}/area-clienti/carte" in text
    assert f"Riproveremo il {day(retry_on)}." in text

    # The area shows the failure; a new card added there renews at once.
    page.reload()
    failure = row.locator(f"#service-{pec.id}-failure")
    expect(failure).to_contain_text(
        f"Rinnovo non riuscito il {day(as_of)}: La carta non ha fondi sufficienti."
    )
    expect(failure).to_contain_text(f"Nuovo tentativo il {day(retry_on)}.")
    expect(row.locator(f"#service-{pec.id}-expiry")).to_have_text(day(old))
    failure.get_by_role("link", name="Aggiungi una nuova carta").click()
    expect(page).to_have_url(re.compile(r"/area-clienti/carte#add-card$"))
    verify_card(page, FRICTIONLESS_CARD)

    expect(page).to_have_url(re.compile(r"/area-clienti/$"))
    expect(page.locator("#flash")).to_contain_text(
        f"Rinnovo di {PEC} riuscito: il servizio ora scade il {day(new)}."
    )
    expect(row.locator(f"#service-{pec.id}-expiry")).to_have_text(day(new))
    expect(row.locator(f"#service-{pec.id}-failure")).to_have_count(0)
    [(new_card, _, last4), *_] = saved_cards(live, new_customer)
    assert last4 == "4242" and new_card not in cards.values()
    expect(row.get_by_label("Carta per il rinnovo")).to_have_value(str(new_card))

    assert at_the_bank(live, renewal_id).charged() == [610]
    [renewal] = renewal_orders(live, new_customer).values()
    assert (renewal.status, renewal.total_cents) == ("paid", 610)
    assert renewal.payments == [("renewal", "declined"), ("renewal", "succeeded")]
    pec_now = customer_services(live, new_customer)["PEC-STD"]
    assert (pec_now.expires_at, pec_now.card_last4) == (new, "4242")
    text = (
        one_mail_about(live, new_customer, f"Rinnovo effettuato: {PEC} fino al {day(new)}")
    ).text
    assert "Totale addebitato: € 6,10" in text
