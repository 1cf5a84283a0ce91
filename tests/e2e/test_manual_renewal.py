"""Issue 28: a customer who turned Rinnovo automatico off gets the 30-day reminder (read through
the sandbox's e-mails), follows its "Rinnova ora", renews for 2 years on the bank's hosted page
with 3-D Secure, and the area shows the expiry moved by exactly 2 years; the invoice line carries
the period. Time is driven by the sandbox's test clock for this customer alone, as QA does."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from lxml import etree
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    BANK_CARD_URL,
    ORDER_URL,
    buy_by_card,
    choose_card_method,
    choose_on_portal,
    confirm_order,
    customer_services,
    day,
    days_pass_for,
    days_until,
    enter_card,
    enter_otp,
    one_mail_about,
    open_my_services,
    open_portal,
    order_id_of,
    pay_first_card,
    return_to_shop,
    service_row,
)
from webapp.clock import add_years, rome_date
from webapp.invoicing.xsd import schema_errors

PEC = "PEC Standard"
OTP_CARD = "4111111111111111"  # success after the SMS OTP (3-D Secure)
RENEW_LINK = re.compile(r"Rinnova ora: (\S+/area-clienti/servizi/\d+/rinnova)")


def test_reminder_rinnova_ora_renews_two_years_on_the_hosted_page(
    page: Page, live, new_customer, login, tmp_path: Path
) -> None:
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    pay_first_card(page, "4242424242424242")
    pec = customer_services(live, new_customer)["PEC-STD"]

    # Rinnovo automatico off: from now on only the reminders say how to keep the service.
    open_my_services(page)
    row = service_row(page, PEC)
    row.get_by_role("switch", name="Rinnovo automatico").click()
    expect(row).to_have_attribute("data-auto-renew", "off")
    expect(row.locator(f"#service-{pec.id}-renew")).to_have_text("Rinnova")

    # Time goes by until the expiry is 30 days away, and the pass of that day runs:
    # one reminder, with the link.
    clock = days_pass_for(live, new_customer, days_until(pec.expires_at, 30))
    assert re.search(r"promemoria rinnovo manuale [1-9]", clock.text), clock.text
    old = clock.moved["PEC-STD"].expires_at
    new = add_years(old, 2)
    assert rome_date(old) - rome_date(clock.as_of) == timedelta(days=30)
    text = one_mail_about(live, new_customer, f"Promemoria: {PEC} scade il {day(old)}").text
    assert "tra 30 giorni" in text and "€ 6,10 (IVA inclusa)" in text
    link = RENEW_LINK.search(text)
    assert link, text
    assert link.group(1).endswith(f"/area-clienti/servizi/{pec.id}/rinnova")

    # "Rinnova ora": 2 years, the new expiry shown before paying.
    page.goto(link.group(1))
    renew = page.locator("#renew")
    expect(renew.get_by_role("heading")).to_have_text(f"Rinnova {PEC}")
    renew.get_by_label("Durata del rinnovo").select_option("2")
    renew.get_by_role("button", name="Aggiungi al carrello e procedi").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    choose_card_method(page)
    period = f"scadenza attuale {day(old)}, nuova scadenza {day(new)}"
    expect(page.locator("#checkout-items")).to_contain_text(period)
    expect(page.locator("#checkout-totals [data-total=total]")).to_have_text("€ 12,20")
    order_id = confirm_order(page)
    expect(page.locator(".renewal-period")).to_have_text(  # the order page, before paying
        f"Rinnovo: dalla scadenza del {day(old)} alla nuova scadenza del {day(new)}"
    )

    # Paga ora → the portal → Nuova carta di pagamento → the bank's page, SMS OTP, back.
    open_portal(page)
    choose_on_portal(page, "Nuova carta di pagamento")
    page.get_by_role("button", name="Procedi").click()
    expect(page).to_have_url(BANK_CARD_URL)
    enter_card(page, OTP_CARD)
    enter_otp(page)
    return_to_shop(page)
    expect(page).to_have_url(ORDER_URL)
    assert order_id_of(page) == order_id
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")

    # The same service, its expiry moved by exactly 2 years from the old one.
    open_my_services(page)
    row = service_row(page, PEC)
    expect(row.locator(f"#service-{pec.id}-expiry")).to_have_text(day(new))
    expect(row.locator(f"#service-{pec.id}-status")).to_have_text("Attivo")
    services = customer_services(live, new_customer)
    assert list(services) == ["PEC-STD"] and services["PEC-STD"].id == pec.id
    assert services["PEC-STD"].expires_at == new

    # The invoice of the renewal: its line carries the period, valid against the XSD.
    page.goto("/area-clienti/fatture")
    invoice = page.locator("#invoices tbody tr", has_text="€ 12,20")
    expect(invoice).to_have_count(1)
    with page.expect_download() as download:
        invoice.get_by_role("link", name="Scarica XML").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    xml = saved.read_bytes()
    assert schema_errors(xml) == []
    line = etree.fromstring(xml).find(".//DettaglioLinee")
    start = rome_date(old) + timedelta(days=1)
    assert line.findtext("DataInizioPeriodo") == start.isoformat()
    assert line.findtext("DataFinePeriodo") == rome_date(new).isoformat()
    assert f"dal {day(start)} al {day(new)}" in line.findtext("Descrizione")
