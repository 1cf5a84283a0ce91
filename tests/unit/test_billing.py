"""Dati di fatturazione: the checks and their Italian messages, the checkout step that asks
for them, the customer-area page, the invoices pages (owner only) and the e-mail link."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.unit.helpers import HX, add, choose_method, confirm, login, orders_of
from tests.unit.invoicing_helpers import PROFILES, confirmed_order, give_billing, pay
from webapp.invoicing.models import Invoice
from webapp.invoicing.services import invoice_of_order
from webapp.shop.billing import BillingData, BillingInvalid, check, clean, save_profile
from webapp.shop.models import BillingProfile, CustomerType

# --- the checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "changes", "field", "message"),
    [
        ("private", {"tax_code": "RSSMRA85T10A562X"}, "tax_code", "Codice fiscale non valido"),
        ("private", {"tax_code": ""}, "tax_code", "Inserisci il codice fiscale"),
        ("private", {"first_name": ""}, "first_name", "Inserisci il nome"),
        ("private", {"postal_code": "2012"}, "postal_code", "CAP non valido: servono 5 cifre"),
        ("private", {"postal_code": ""}, "postal_code", "Inserisci il CAP."),
        ("private", {"province": "XX"}, "province", "Provincia non valida"),
        ("private", {"city": "Łódź"}, "city", "Usa solo lettere latine"),
        ("business_code", {"vat_number": "00743110158"}, "vat_number", "Partita IVA non valida"),
        ("business_code", {"vat_number": ""}, "vat_number", "Inserisci la partita IVA"),
        ("business_code", {"sdi_code": "ABC12"}, "sdi_code", "codice destinatario ha 7"),
        ("business_pec", {"pec": "non-una-pec"}, "pec", "Indirizzo PEC non valido"),
        ("business_code", {"company_name": ""}, "company_name", "Inserisci la denominazione"),
        ("public", {"sdi_code": ""}, "sdi_code", "codice univoco ufficio (IPA)"),
        ("public", {"sdi_code": "ABCDEFG"}, "sdi_code", "codice univoco ufficio ha 6"),
        ("public", {"cig": "123"}, "cig", "Il CIG ha 10 caratteri"),
        ("public", {"cup": "123"}, "cup", "Il CUP ha 15 caratteri"),
        ("public", {"tax_code": ""}, "tax_code", "codice fiscale dell'ente"),
        ("public", {"country": "FR"}, "country", "solo indirizzi in Italia"),
    ],
)
def test_each_wrong_field_is_named_in_italian(kind, changes, field, message):
    errors = check(clean(replace(PROFILES[kind], **changes)))
    assert field in errors and message in errors[field], errors


@pytest.mark.parametrize("kind", list(PROFILES))
def test_the_sample_profiles_are_valid(kind):
    assert check(clean(PROFILES[kind])) == {}


def test_save_normalises_and_keeps_only_the_fields_of_the_type(db, dummy_customer):
    data = replace(PROFILES["business_code"], first_name="Mario", cig="Z1A2B3C4D5")
    profile = save_profile(dummy_customer.id, data)
    assert profile.customer_type is CustomerType.BUSINESS
    assert (profile.vat_number, profile.sdi_code) == ("00743110157", "M5UXCR1")
    assert profile.first_name is None and profile.cig is None
    assert not profile.split_payment
    with pytest.raises(BillingInvalid) as refused:
        save_profile(dummy_customer.id, replace(data, vat_number="123"))
    assert "vat_number" in refused.value.errors


def test_a_business_without_code_nor_pec_gets_0000000(db, dummy_customer):
    data = replace(PROFILES["business_code"], sdi_code="")
    assert save_profile(dummy_customer.id, data).sdi_code == "0000000"


# --- customer area: Dati di fatturazione ---------------------------------------------------------


def _form(kind: str, **changes) -> dict:
    return vars(replace(PROFILES[kind], **changes))


def test_area_page_shows_and_saves_billing_data(client, db, dummy_customer):
    login(client)
    page = client.get("/area-clienti/fatturazione")
    assert page.status_code == 200 and "Dati di fatturazione" in page.text
    assert 'value="RSSMRA85T10A562S"' in page.text  # the saved data fill the form

    response = client.post("/area-clienti/fatturazione", data=_form("public"))
    assert response.status_code == 303
    db.session.expire_all()
    profile = db.session.scalar(select(BillingProfile))
    assert profile.customer_type is CustomerType.PUBLIC and profile.sdi_code == "UF1234"


def test_area_page_refuses_bad_data_with_422_and_messages(client, db, dummy_customer):
    login(client)
    data = _form("business_code", vat_number="00743110158", postal_code="123")
    response = client.post("/area-clienti/fatturazione", data=data)
    assert response.status_code == 422
    assert "Partita IVA non valida" in response.text
    assert "CAP non valido: servono 5 cifre." in response.text
    db.session.expire_all()
    assert db.session.scalar(select(BillingProfile)).customer_type is CustomerType.PRIVATE


def test_area_billing_page_needs_login(client):
    response = client.get("/area-clienti/fatturazione")
    assert response.status_code == 303 and "/accedi" in response.headers["Location"]


# --- checkout ------------------------------------------------------------------------------------


def test_first_checkout_asks_billing_data_before_confirming(client, db, create_customer, catalogue):
    customer = create_customer(billing=False)
    login(client)
    add(client, catalogue["products"]["CONS-1"])
    choose_method(client)
    page = client.get("/checkout")
    assert 'id="checkout-billing"' in page.text and "Salva i dati di fatturazione" in page.text
    token = page.text.split('name="checkout_token" value="')[1].split('"')[0]

    refused = confirm(client, token, htmx=True)
    assert refused.status_code == 422
    assert "Inserisci i dati di fatturazione" in refused.text

    bad = client.post("/checkout/fatturazione", data=_form("public", cig="1"), headers=HX)
    assert bad.status_code == 422 and "Il CIG ha 10 caratteri" in bad.text
    saved = client.post("/checkout/fatturazione", data=_form("public"), headers=HX)
    assert saved.status_code == 200
    assert "Comune di Esempio" in saved.text and "<html" not in saved.text
    # Split payment: the totals (out of band) leave the VAT out of what is paid.
    assert 'data-total="split-vat"' in saved.text
    assert 'data-total="total">€ 50,00' in saved.text

    done = confirm(client, token)
    assert done.status_code == 303
    (order,) = orders_of(customer.id)
    assert order.split_payment
    assert (order.net_cents, order.vat_cents, order.total_cents) == (5000, 1100, 5000)


# --- invoices in the customer area ---------------------------------------------------------------


@pytest.fixture
def invoiced(db, dummy_customer, catalogue, now):
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-STD",))
    pay(order, now)
    db.session.commit()
    return invoice_of_order(order.id)


def test_invoices_list_copy_and_xml(client, invoiced):
    login(client)
    page = client.get("/area-clienti/fatture")
    assert page.status_code == 200 and invoiced.number_label in page.text
    copy = client.get(f"/area-clienti/fatture/{invoiced.id}")
    assert copy.status_code == 200
    assert "Copia di cortesia" in copy.text and "invoice.css" in copy.text
    assert "Mario Rossi" in copy.text and "€ 6,10" in copy.text
    xml = client.get(f"/area-clienti/fatture/{invoiced.id}/xml")
    assert xml.status_code == 200 and xml.data == invoiced.xml
    assert xml.mimetype == "application/xml"
    assert invoiced.file_name in xml.headers["Content-Disposition"]


def test_another_customers_invoice_is_not_found(client, create_customer, invoiced):
    create_customer(email="luigi@example.it", name="Luigi Verdi")
    login(client, "luigi@example.it")
    assert client.get(f"/area-clienti/fatture/{invoiced.id}").status_code == 404
    assert client.get(f"/area-clienti/fatture/{invoiced.id}/xml").status_code == 404
    assert invoiced.number_label not in client.get("/area-clienti/fatture").text


def test_the_payment_e_mail_links_the_invoice(db, dummy_customer, catalogue, now):
    from webapp.outbox.models import OutboxEmail

    give_billing(dummy_customer, "private")
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-STD",))
    pay(order, now)
    db.session.commit()
    invoice = db.session.scalar(select(Invoice))
    email = db.session.scalar(select(OutboxEmail))
    assert f"Fattura n. {invoice.number_label}" in email.body_text
    assert f"/area-clienti/fatture/{invoice.id}" in email.body_html
    assert db.session.scalar(select(Invoice.id).where(Invoice.id != invoice.id)) is None


def test_billing_data_object_round_trip(db, dummy_customer):
    profile = give_billing(dummy_customer, "business_pec")
    assert BillingData.from_profile(profile).pec == "fatture@pec.studiobianchi.it"


def test_a_real_card_payment_through_the_bank_is_invoiced_once(
    client, db, bank, dummy_customer, catalogue, now
):
    from urllib.parse import urlsplit

    from tests.unit.bank_browser import BankBrowser
    from webapp.extensions import mail

    give_billing(dummy_customer, "business_code")
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    login(client)
    bank_url = client.post(f"/ordini/{order.id}/paga").headers["Location"]
    back = urlsplit(BankBrowser(bank).pay(bank_url, "4111111111111111"))
    with mail.record_messages() as outbox:
        for _ in range(2):  # the return URL replayed: still one invoice, one e-mail
            client.get(back.path, query_string=back.query)
    db.session.expire_all()
    invoices = db.session.scalars(select(Invoice)).all()
    assert [(i.order_id, i.paid_cents, i.total_cents) for i in invoices] == [
        (order.id, order.total_cents, order.net_cents + order.vat_cents)
    ]
    assert len(outbox) == 1 and f"Fattura n. {invoices[0].number_label}" in outbox[0].body
