"""Issue 12: a public administration gives its billing data at the first checkout, pays the
net only (split payment), and downloads its FatturaPA invoice from the customer area."""

from __future__ import annotations

from pathlib import Path

from lxml import etree
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    add_to_cart,
    choose_card_method,
    confirm_order,
    mails_to,
    order_state,
    pay_first_card,
    wait_until,
)
from webapp.invoicing.xsd import schema_errors

# Conservazione digitale 1 GB: 50,00 net, IVA 11,00 shown but not paid by the administration.
NET = "€ 50,00"


def fill_public_administration(page: Page) -> None:
    billing = page.locator("#checkout-billing")
    billing.get_by_label("Pubblica amministrazione").check()
    billing.get_by_label("Denominazione o ragione sociale").fill("Comune di Esempio")
    billing.get_by_label("Codice fiscale").fill("00743110157")
    billing.get_by_label("Indirizzo (via e numero civico)").fill("Piazza del Municipio 1")
    billing.get_by_label("CAP").fill("00184")
    billing.get_by_label("Comune", exact=True).fill("Roma")
    billing.get_by_label("Provincia (sigla)").fill("RM")
    billing.get_by_label("Codice destinatario SdI / codice univoco ufficio").fill("UF1234")
    billing.get_by_label("CIG (facoltativo)").fill("Z1A2B3C4D5")


def test_public_administration_pays_net_and_downloads_its_invoice(
    page: Page, live, make_customer, login, tmp_path: Path
) -> None:
    customer = make_customer("Ufficio Acquisti", billing=False)
    login(page, customer)
    page.goto("/")
    add_to_cart(page, "CONS-1")
    page.goto("/checkout")
    choose_card_method(page)

    # Confirming without billing data is refused with the reason.
    page.get_by_label("condizioni generali di contratto").check()
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(page.locator("#checkout-confirm")).to_contain_text("Inserisci i dati di fatturazione")

    fill_public_administration(page)
    page.get_by_label("CAP").fill("184")  # a wrong CAP first: the field says why
    page.get_by_role("button", name="Salva i dati di fatturazione").click()
    expect(page.locator("#checkout-billing")).to_contain_text("CAP non valido: servono 5 cifre.")
    page.get_by_label("CAP").fill("00184")
    page.get_by_role("button", name="Salva i dati di fatturazione").click()
    expect(page.locator("#checkout-billing")).to_contain_text("Comune di Esempio")
    expect(page.locator("#checkout-totals [data-total=total]")).to_have_text(NET)

    order_id = confirm_order(page)
    expect(page.locator("#order-total")).to_have_text(NET)
    pay_first_card(page)

    page.goto("/area-clienti/fatture")
    row = page.locator("#invoices tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Fattura")
    expect(row).to_contain_text("€ 61,00")
    with page.expect_download() as download:
        row.get_by_role("link", name="Scarica XML").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("IT01234560157_") and saved.suffix == ".xml"
    xml = saved.read_bytes()
    assert schema_errors(xml) == []
    tree = etree.fromstring(xml)
    assert tree.get("versione") == "FPA12"
    assert tree.findtext(".//EsigibilitaIVA") == "S"
    assert tree.findtext(".//ImportoPagamento") == "50.00"
    assert tree.findtext(".//ImportoTotaleDocumento") == "61.00"
    assert tree.findtext(".//CodiceDestinatario") == "UF1234"

    row.get_by_role("link", name="Copia di cortesia").click()
    expect(page.locator("#courtesy-copy")).to_contain_text("Comune di Esempio")
    expect(page.locator("#invoice-paid")).to_have_text(NET)
    number = page.locator("#invoice-number").inner_text()
    mails = wait_until(lambda: mails_to(live, customer), what="the payment e-mail")
    mail_text = "\n".join(m.text for m in mails)
    assert f"Fattura n. {number}" in mail_text
    # The invoice as the back office sees it; "sdi" is its state at the SdI once transmitted.
    [invoice] = order_state(live, order_id).raw["invoices"]
    assert (invoice["kind"], invoice["number"], invoice["paid_cents"]) == ("TD01", number, 5000)
    assert "sdi" in invoice
