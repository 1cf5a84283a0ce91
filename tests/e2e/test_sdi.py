"""Issue 22: invoices reach the SdI through the intermediary (the SdI · Sandbox), and the shop
follows each one to its outcome. A business pays and its invoice is "Consegnata" in the back
office and on the customer's Fatture page; a rejected invoice is corrected, resent ("Reinvia",
same number) and delivered. The recipient codes are the sandbox's test codes (README)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import (
    add_to_cart,
    choose_card_method,
    confirm_order,
    htmx_idle,
    pay_first_card,
    wait_until,
)
from tests.e2e.test_backoffice import staff_login

CODE_LABEL = "Codice destinatario SdI / codice univoco ufficio"


def fill_business_billing(page: Page, code: str) -> None:
    """The checkout's billing data: a business with its codice destinatario."""
    billing = page.locator("#checkout-billing")
    billing.get_by_label("Azienda o professionista").check()
    billing.get_by_label("Denominazione o ragione sociale").fill("Rossi Consulting S.r.l.")
    billing.get_by_label("Partita IVA").fill("00743110157")
    billing.get_by_label("Indirizzo (via e numero civico)").fill("Via Garibaldi 10")
    billing.get_by_label("CAP").fill("20121")
    billing.get_by_label("Comune", exact=True).fill("Milano")
    billing.get_by_label("Provincia (sigla)").fill("MI")
    billing.get_by_label(CODE_LABEL).fill(code)
    billing.get_by_role("button", name="Salva i dati di fatturazione").click()
    expect(billing.get_by_role("button", name="Salva i dati di fatturazione")).to_have_count(0)
    htmx_idle(page)


def buy_as_business(page: Page, code: str) -> None:
    page.goto("/")
    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    choose_card_method(page)
    fill_business_billing(page, code)
    confirm_order(page)
    pay_first_card(page)


def invoice_number(page: Page) -> str:
    page.goto("/area-clienti/fatture")
    row = page.locator("#invoices tbody tr")
    expect(row).to_have_count(1)
    return row.locator("td").nth(1).inner_text().strip()


def eventually_shows(page: Page, url: str, locator: str, text: str) -> None:
    """Reload the page (as a person would) until the locator says `text`."""

    def shows() -> bool:
        page.goto(url)
        return text in (page.locator(locator).inner_text() or "")

    wait_until(shows, what=f"{text!r} on {url}")


def test_a_paid_invoice_is_delivered_and_shown_consegnata(
    page: Page, browser: Browser, live, make_customer, login, sdi_scheduler, tmp_path: Path
) -> None:
    customer = make_customer("Rossi Consulting", billing=False)
    login(page, customer)
    buy_as_business(page, "TESTRC1")
    number = invoice_number(page)

    eventually_shows(page, "/area-clienti/fatture", "#invoices tbody tr", "Consegnata")

    staff = staff_login(browser, live)
    staff.locator("#bo-nav").get_by_role("link", name="Fatture SdI", exact=True).click()
    row = staff.locator("#sdi-invoices tbody tr", has_text=number)
    expect(row).to_contain_text("Consegnata")
    row.get_by_role("link", name=number).click()
    expect(staff.locator("#sdi-state")).to_have_text("Consegnata")
    timeline = staff.locator("#sdi-timeline")
    expect(timeline).to_contain_text("RC Ricevuta di consegna")
    with staff.expect_download() as download:
        timeline.get_by_role("link", name="XML").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    from webapp.sdi.messages import validate

    xml = saved.read_bytes()
    assert b"RicevutaConsegna" in xml and validate(xml) == []


def test_a_rejected_invoice_is_corrected_resent_and_delivered(
    page: Page, browser: Browser, live, make_customer, login, sdi_scheduler
) -> None:
    customer = make_customer("Bianchi Consulting", billing=False)
    login(page, customer)
    buy_as_business(page, "TESTNS1")  # the sandbox's code that forces a rejection (NS)
    number = invoice_number(page)
    eventually_shows(page, "/area-clienti/fatture", "#invoices tbody tr", "Scartata")

    staff = staff_login(browser, live)
    staff.locator("#bo-nav").get_by_role("link", name="Da correggere").click()
    row = staff.locator("#sdi-to-correct tbody tr", has_text=number)
    expect(row).to_contain_text("00311")

    # The customer corrects the codice destinatario in the customer area.
    page.goto("/area-clienti/fatturazione")
    page.get_by_label(CODE_LABEL).fill("TESTRC1")
    page.get_by_role("button", name="Salva i dati di fatturazione").click()
    expect(page.get_by_text("Dati di fatturazione salvati")).to_be_visible()

    staff.reload()
    staff.locator("#sdi-to-correct tbody tr", has_text=number).get_by_role(
        "button", name="Reinvia"
    ).click()
    expect(staff.get_by_text("Nuovo invio preparato")).to_be_visible()
    url = staff.url
    eventually_shows(staff, url, "#sdi-state", "Consegnata")
    expect(staff.locator("#sdi-timeline > li")).to_have_count(2)
    expect(staff.locator("#sdi-timeline")).to_contain_text("NS Notifica di scarto")
    eventually_shows(page, "/area-clienti/fatture", "#invoices tbody tr", "Consegnata")
    assert invoice_number(page) == number  # the same number, a new file
